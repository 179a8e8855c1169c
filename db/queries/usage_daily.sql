-- name: UsageAdd :exec
INSERT INTO usage_daily (tenant_id, day, procedure, requests, rate_limited)
VALUES (@tenant_id, @day, @procedure, @requests, @rate_limited)
ON CONFLICT (tenant_id, day, procedure) DO UPDATE
SET requests = usage_daily.requests + excluded.requests,
  rate_limited = usage_daily.rate_limited + excluded.rate_limited;

-- UsageMonthTotal counts the requests (not the rate-limited calls) from
-- month_start on.
-- name: UsageMonthTotal :one
SELECT coalesce(sum(requests), 0)::bigint FROM usage_daily
WHERE tenant_id = @tenant_id AND day >= @month_start::date;

-- name: UsageByDay :many
SELECT day, sum(requests)::bigint AS requests, sum(rate_limited)::bigint AS rate_limited
FROM usage_daily
WHERE tenant_id = @tenant_id AND day BETWEEN @first_day::date AND @last_day::date
GROUP BY day
ORDER BY day;

-- name: UsageByProcedure :many
SELECT procedure, sum(requests)::bigint AS requests, sum(rate_limited)::bigint AS rate_limited
FROM usage_daily
WHERE tenant_id = @tenant_id AND day BETWEEN @first_day::date AND @last_day::date
GROUP BY procedure
ORDER BY procedure;
