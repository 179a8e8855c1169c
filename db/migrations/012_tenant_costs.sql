-- Per-tenant cost attribution (issue 13): each tenant's calls, database
-- time and rows per UTC day, measured on the request path (package cost)
-- and counted in memory by each replica (metering.Cost), which adds its
-- counts here every few seconds in one statement for every tenant at once,
-- like usage_daily (008_batched_flush.sql).

CREATE TABLE tenant_costs_daily (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  -- day is the UTC day the calls finished.
  day date NOT NULL,
  calls bigint NOT NULL DEFAULT 0 CHECK (calls >= 0),
  -- db_time_us is the time the calls' statements ran, in microseconds.
  db_time_us bigint NOT NULL DEFAULT 0 CHECK (db_time_us >= 0),
  -- rows is what the calls' statements returned or changed.
  rows bigint NOT NULL DEFAULT 0 CHECK (rows >= 0),
  PRIMARY KEY (tenant_id, day)
);

-- The operator's list of a day's costliest tenants.
CREATE INDEX tenant_costs_daily_day ON tenant_costs_daily (day, db_time_us DESC, tenant_id DESC);

ALTER TABLE tenant_costs_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_costs_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_costs_daily
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));
-- The flush and the operator's list cross tenants: they run as the owner
-- (SECURITY DEFINER functions below) through this policy.
CREATE POLICY owner_flush ON tenant_costs_daily TO CURRENT_USER USING (true) WITH CHECK (true);

-- The app role reads its tenant's rows (and the export copies and imports
-- them); it writes only through app.cost_flush.
GRANT SELECT, INSERT ON tenant_costs_daily TO quarters_app;

-- cost_flush adds calls, db_time_us and rows to the rows keyed by (tenant,
-- day), the arrays read in parallel. Keys must be unique within one call.
-- Counts of tenants that no longer exist are dropped, so one deleted
-- tenant cannot block everyone's flush. Acting for a tenant it refuses to
-- run, so tenant code that called it by mistake could not write another
-- tenant's counts.
CREATE FUNCTION app.cost_flush(
  p_tenant_ids uuid[],
  p_days date[],
  p_calls bigint[],
  p_db_time_us bigint[],
  p_rows bigint[]
)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF app.current_tenant_id() IS NOT NULL THEN
    RAISE EXCEPTION 'app.cost_flush must not run acting for a tenant';
  END IF;
  INSERT INTO public.tenant_costs_daily AS c (tenant_id, day, calls, db_time_us, rows)
  SELECT n.tenant_id, n.day, n.calls, n.db_time_us, n.rows
  FROM unnest(p_tenant_ids, p_days, p_calls, p_db_time_us, p_rows)
    AS n (tenant_id, day, calls, db_time_us, rows)
  WHERE EXISTS (SELECT 1 FROM public.tenants t WHERE t.id = n.tenant_id)
  ON CONFLICT ON CONSTRAINT tenant_costs_daily_pkey DO UPDATE
  SET calls = c.calls + excluded.calls,
    db_time_us = c.db_time_us + excluded.db_time_us,
    rows = c.rows + excluded.rows;
END
$$;
REVOKE ALL ON FUNCTION app.cost_flush(uuid[], date[], bigint[], bigint[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.cost_flush(uuid[], date[], bigint[], bigint[], bigint[]) TO quarters_app;

-- platform_tenant_cost_list lists every tenant's totals over the days
-- p_first_day to p_last_day, costliest (database time) first, keyset-paged
-- on (db_time_us, tenant_id). (One tenant's are read as that tenant, under
-- row-level security, without it.)
CREATE FUNCTION app.platform_tenant_cost_list(
  p_first_day date,
  p_last_day date,
  p_before_db_time_us bigint,
  p_before_id uuid,
  p_limit integer
)
RETURNS TABLE (tenant_id uuid, calls bigint, db_time_us bigint, rows bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.tenant_id, sum(c.calls)::bigint, sum(c.db_time_us)::bigint, sum(c.rows)::bigint
  FROM public.tenant_costs_daily c
  WHERE (SELECT app.current_tenant_id()) IS NULL
    AND c.day BETWEEN p_first_day AND p_last_day
  GROUP BY c.tenant_id
  HAVING (sum(c.db_time_us)::bigint, c.tenant_id) < (p_before_db_time_us, p_before_id)
  ORDER BY 3 DESC, 1 DESC
  LIMIT least(greatest(p_limit, 0), 1001)
$$;
REVOKE ALL ON FUNCTION app.platform_tenant_cost_list(date, date, bigint, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.platform_tenant_cost_list(date, date, bigint, uuid, integer) TO quarters_app;
