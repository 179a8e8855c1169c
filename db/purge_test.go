package db_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
)

// TestPurgeAsNonSuperuserOwner runs app.tenant_purge as production does:
// the schema migrated by an owner that is no superuser (so FORCE ROW
// LEVEL SECURITY binds it too, and the purge gets at the tenant's rows
// only through their policies), called by the app role. Every row of the
// tenant goes, its member who belongs nowhere else too, the other
// tenant's rows and its member who also belongs to it stay, and the
// certificate counts what was there. Acting for a tenant, and for a
// tenant whose deletion is not due, it does nothing.
func TestPurgeAsNonSuperuserOwner(t *testing.T) {
	t.Parallel()
	_, adminURL := dbtest.NewURLs(t) // the cluster's superuser
	admin, err := pgx.Connect(ctx, adminURL)
	require.NoError(t, err)
	defer admin.Close(ctx)
	raw := make([]byte, 6)
	_, _ = rand.Read(raw)
	role, name := "owner_"+hex.EncodeToString(raw), "purge_"+hex.EncodeToString(raw)
	_, err = admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN NOSUPERUSER CREATEROLE")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name+" OWNER "+role)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_, _ = admin.Exec(ctx, "DROP ROLE IF EXISTS "+role)
	})
	urlFor := func(user string) string {
		u, err := url.Parse(adminURL)
		require.NoError(t, err)
		u.User = url.User(user)
		u.Path = "/" + name
		q := u.Query()
		q.Del("user")
		q.Del("dbname")
		u.RawQuery = q.Encode()
		return u.String()
	}
	require.NoError(t, db.Migrate(ctx, urlFor(role)))
	d, err := db.Open(ctx, urlFor("quarters_app"), nil)
	require.NoError(t, err)
	defer d.Close()

	// Two tenants, each with a project, a document and an owner; b's
	// owner is a member of a too.
	app, err := pgx.Connect(ctx, urlFor("quarters_app"))
	require.NoError(t, err)
	defer app.Close(ctx)
	a, b := uuid.New(), uuid.New()
	users := map[uuid.UUID]uuid.UUID{}
	for _, id := range []uuid.UUID{a, b} {
		require.NoError(t, pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
			stmts := []string{
				"SELECT set_config('app.tenant_id', $1::text, true)",
				"INSERT INTO tenants (id, slug, name, owner_email) VALUES ($1::uuid, 's' || replace($1::uuid::text, '-', ''), 'T', 'o@x.example')",
				"INSERT INTO projects (tenant_id, id, name) VALUES ($1::uuid, $1::uuid, 'p')",
				"INSERT INTO documents (tenant_id, project_id, title) VALUES ($1::uuid, $1::uuid, 'd')",
			}
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s, id); err != nil {
					return err
				}
			}
			var u uuid.UUID
			if err := tx.QueryRow(ctx, "SELECT user_id FROM app.user_ensure($1, NULL)", id.String()+"@x.example").Scan(&u); err != nil {
				return err
			}
			users[id] = u
			_, err := tx.Exec(ctx, "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", id, u)
			return err
		}))
	}
	require.NoError(t, pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1::text, true)", a); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'member')", a, users[b])
		return err
	}))
	setPurge := func(id uuid.UUID, when string) {
		require.NoError(t, pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1::text, true)", id); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE tenants SET delete_request_time = now(), purge_time = now() + $2::interval, delete_requested_by = 'platform' WHERE id = $1", id, when)
			return err
		}))
	}

	out, err := d.PurgeTenant(ctx, a, 0)
	require.NoError(t, err)
	require.Equal(t, db.PurgeNotPending, out)
	setPurge(a, "1 hour")
	out, err = d.PurgeTenant(ctx, a, 0)
	require.NoError(t, err)
	require.Equal(t, db.PurgeNotDue, out)
	// Acting for a tenant it refuses.
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1::text, true)", b); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT app.tenant_purge($1, 0)", a)
		return err
	})
	require.ErrorContains(t, err, "must not run acting for a tenant")

	setPurge(b, "1 hour") // not due: stays
	require.NoError(t, pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1::text, true)", a); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE tenants SET purge_time = now() - interval '1 second' WHERE id = $1", a)
		return err
	}))
	out, err = d.PurgeTenant(ctx, a, 0)
	require.NoError(t, err)
	require.Equal(t, db.PurgePurged, out)
	out, err = d.PurgeTenant(ctx, a, 0)
	require.NoError(t, err)
	require.Equal(t, db.PurgeGone, out)

	// Counted as the superuser, in the purged database: nothing hides.
	superCheck, err := pgx.Connect(ctx, func() string {
		u, _ := url.Parse(adminURL)
		u.Path = "/" + name
		q := u.Query()
		q.Del("dbname")
		u.RawQuery = q.Encode()
		return u.String()
	}())
	require.NoError(t, err)
	defer superCheck.Close(ctx)
	for _, table := range []string{"tenants", "projects", "documents", "memberships"} {
		col := "tenant_id"
		if table == "tenants" {
			col = "id"
		}
		var na, nb int
		require.NoError(t, superCheck.QueryRow(ctx, "SELECT count(*) FILTER (WHERE "+col+" = $1), count(*) FILTER (WHERE "+col+" = $2) FROM "+table, a, b).Scan(&na, &nb))
		require.Zero(t, na, table)
		require.Equal(t, 1, nb, table)
	}
	var usersLeft []uuid.UUID
	rows, err := superCheck.Query(ctx, "SELECT id FROM users ORDER BY id")
	require.NoError(t, err)
	usersLeft, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{users[b]}, usersLeft, "a's owner went; b's, a member of a too, stays")

	c, err := d.PlatformDeletionCertificate(ctx, a)
	require.NoError(t, err)
	require.Equal(t, "platform", c.RequestedBy)
	require.Nil(t, c.ExportSHA256)
	want := map[string]int64{"public.tenants": 1, "public.projects": 1, "public.documents": 1, "public.memberships": 2, "public.users": 1}
	for table, n := range c.Tables {
		require.Zero(t, n.After, table)
		require.Equal(t, want[table], n.Before, table)
	}
	_, err = d.PlatformDeletionCertificate(ctx, b)
	require.ErrorIs(t, err, db.ErrNotFound)
}
