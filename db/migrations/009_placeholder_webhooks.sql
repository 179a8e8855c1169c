-- Placeholder: number 9 belongs to another branch (issue 12's jobs and
-- lifecycle work). tern needs contiguous numbers, so this branch (webhooks,
-- 010) carries an empty 009 until that one is merged; drop this file then.
SELECT 1;
