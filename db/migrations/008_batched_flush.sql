-- Batched usage flush (issue 10): each replica adds its in-memory counts
-- for every tenant it served in one statement, instead of one transaction
-- per tenant through the pool, so the flush keeps up with 100,000 active
-- tenants and the final flush at shutdown finishes in time.
--
-- The counts cross tenants, so the function runs as the owner (SECURITY
-- DEFINER) through an owner_flush policy on usage_daily, like the other
-- privileged functions; it is called from one place, db/usageflush.go.
-- Inside a transaction acting for a tenant it refuses to run, so tenant
-- code that called it by mistake could not write another tenant's counts.

CREATE POLICY owner_flush ON usage_daily TO CURRENT_USER USING (true) WITH CHECK (true);

-- usage_flush adds requests and rate_limited to the rows keyed by
-- (tenant, day, procedure), the arrays read in parallel (unnest), and
-- returns each listed tenant's requests from p_month_start on, after the
-- addition: the replica's fresh base for its monthly quota check, with no
-- read of its own. Keys must be unique within one call (ON CONFLICT cannot
-- touch a row twice). Counts of tenants that no longer exist are dropped,
-- so one deleted tenant cannot block everyone's flush.
CREATE FUNCTION app.usage_flush(
  p_tenant_ids uuid[],
  p_days date[],
  p_procedures text[],
  p_requests bigint[],
  p_rate_limited bigint[],
  p_month_start date
)
RETURNS TABLE (tenant_id uuid, month_requests bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF app.current_tenant_id() IS NOT NULL THEN
    RAISE EXCEPTION 'app.usage_flush must not run acting for a tenant';
  END IF;
  INSERT INTO public.usage_daily AS u (tenant_id, day, procedure, requests, rate_limited)
  SELECT c.tenant_id, c.day, c.procedure, c.requests, c.rate_limited
  FROM unnest(p_tenant_ids, p_days, p_procedures, p_requests, p_rate_limited)
    AS c (tenant_id, day, procedure, requests, rate_limited)
  WHERE EXISTS (SELECT 1 FROM public.tenants t WHERE t.id = c.tenant_id)
  ON CONFLICT ON CONSTRAINT usage_daily_pkey DO UPDATE
  SET requests = u.requests + excluded.requests,
    rate_limited = u.rate_limited + excluded.rate_limited;
  -- A new statement, so it sees the rows just added.
  RETURN QUERY
  SELECT d.tenant_id, sum(d.requests)::bigint
  FROM public.usage_daily d
  WHERE d.tenant_id = ANY (p_tenant_ids) AND d.day >= p_month_start
  GROUP BY d.tenant_id;
END
$$;
REVOKE ALL ON FUNCTION app.usage_flush(uuid[], date[], text[], bigint[], bigint[], date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.usage_flush(uuid[], date[], text[], bigint[], bigint[], date) TO quarters_app;
