// Package db owns Quarters' access to PostgreSQL: connection pools for the
// app role, InTenant (every tenant-scoped query runs inside it), the few
// pre-tenant lookups, migrations, and the private cluster that the server
// and the tests start when no DATABASE_URL is given.
//
// The schema lives only in db/migrations and the queries in db/queries;
// sqlc turns them into gen/dbsqlc.
package db
