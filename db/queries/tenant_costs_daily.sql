-- CostByDay is one tenant's stored cost per day of a range (days without
-- calls have no row).
-- name: CostByDay :many
SELECT day, calls, db_time_us, rows
FROM tenant_costs_daily
WHERE tenant_id = @tenant_id AND day BETWEEN @first_day::date AND @last_day::date
ORDER BY day;
