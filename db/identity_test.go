package db_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// member makes email a member of tenant with role, returning the user id.
func (f *fixture) member(t *testing.T, tenantID uuid.UUID, email, role string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, f.db.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
		u, err := q.UserEnsure(ctx, dbsqlc.UserEnsureParams{Email: email})
		if err != nil {
			return err
		}
		id = u.ID
		_, err = q.MembershipInsert(ctx, dbsqlc.MembershipInsertParams{TenantID: tenantID, UserID: id, Role: role})
		return err
	}))
	return id
}

// TestUsersAreSeenThroughMemberships: users are global, but a tenant sees
// only its members, cannot claim another tenant's member, and cannot
// replace the password of an account that is claimed (password and
// verified email).
func TestUsersAreSeenThroughMemberships(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	alice := f.member(t, f.a, "Alice@Example.com", "owner")
	require.Equal(t, alice, f.member(t, f.b, "alice@example.COM", "member"), "email is unique ignoring case")
	bob := f.member(t, f.a, "bob@example.com", "member")

	hash := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"
	require.NoError(t, f.db.ActAs(ctx, f.a, func(q *dbsqlc.Queries) error {
		u, err := q.UserClaim(ctx, dbsqlc.UserClaimParams{ID: bob, PasswordHash: &hash})
		require.NotNil(t, u.EmailVerifyTime)
		return err
	}))

	// Tenant B sees Alice (its member) but not Bob, and cannot touch Bob.
	other := "$argon2id$v=19$m=64,t=1,p=1$b3RoZXJzYWx0$b3RoZXJrZXlvdGhlcmtleQ"
	require.NoError(t, f.db.ActAs(ctx, f.b, func(q *dbsqlc.Queries) error {
		u, err := q.UserGet(ctx, alice)
		require.NoError(t, err)
		require.Equal(t, "Alice@Example.com", u.Email)
		_, err = q.UserGet(ctx, bob)
		if !dbtest.Citus() {
			// On Citus the users policy cannot consult memberships
			// (README, Running on Citus): any tenant may read a user
			// row by id, none without a tenant.
			require.Error(t, err, "bob is not b's member")
		}
		_, err = q.UserClaim(ctx, dbsqlc.UserClaimParams{ID: bob, PasswordHash: &other})
		require.ErrorIs(t, err, pgx.ErrNoRows)
		_, err = q.MembershipGet(ctx, dbsqlc.MembershipGetParams{TenantID: f.a, UserID: bob})
		require.Error(t, err)
		return nil
	}))
	// Nor can tenant A overwrite Bob's password once set.
	require.NoError(t, f.db.ActAs(ctx, f.a, func(q *dbsqlc.Queries) error {
		_, err := q.UserClaim(ctx, dbsqlc.UserClaimParams{ID: bob, PasswordHash: &other})
		require.ErrorIs(t, err, pgx.ErrNoRows)
		return nil
	}))
	creds, err := f.db.UserCredentials(ctx, "BOB@example.com")
	require.NoError(t, err)
	require.Equal(t, bob, creds.UserID)
	require.Equal(t, hash, *creds.PasswordHash)
	require.True(t, creds.EmailVerified)
	_, err = f.db.UserCredentials(ctx, "nobody@example.com")
	require.ErrorIs(t, err, db.ErrNotFound)

	// Writing another tenant's membership is refused by the policy.
	err = f.db.ActAs(ctx, f.b, func(q *dbsqlc.Queries) error {
		_, err := q.MembershipInsert(ctx, dbsqlc.MembershipInsertParams{TenantID: f.a, UserID: alice, Role: "owner"})
		return err
	})
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%v", err)
	require.Equal(t, "42501", pgErr.Code)

	// Without a tenant, the app role sees no user, membership or token.
	var n int
	require.NoError(t, f.db.Pool().QueryRow(ctx, `select (select count(*) from users) + (select count(*) from memberships)
		+ (select count(*) from invitations) + (select count(*) from refresh_tokens)`).Scan(&n))
	require.Zero(t, n)

	tenants, err := f.db.UserTenants(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, []db.UserTenant{{TenantID: f.a, Slug: "ta", Name: "t", Role: "owner"}, {TenantID: f.b, Slug: "tb", Name: "t", Role: "member"}}, tenants)
}

// TestSignOutEverywhere revokes the user's refresh tokens and moves the
// version of each of their memberships, and of no one else's.
func TestSignOutEverywhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	alice := f.member(t, f.a, "alice@example.com", "owner")
	f.member(t, f.b, "alice@example.com", "admin")
	bob := f.member(t, f.a, "bob@example.com", "member")
	for _, u := range []uuid.UUID{alice, bob} {
		require.NoError(t, f.db.ActAs(ctx, f.a, func(q *dbsqlc.Queries) error {
			_, err := q.RefreshTokenInsert(ctx, dbsqlc.RefreshTokenInsertParams{
				TenantID: f.a, UserID: u, FamilyID: uuid.New(), TokenHash: uuid.New().NodeID(), ExpireTime: time.Now().Add(time.Hour)})
			return err
		}))
	}
	touched, err := f.db.UserSignOutEverywhere(ctx, alice)
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{f.a, f.b}, touched)

	require.NoError(t, f.db.ActAs(ctx, f.a, func(q *dbsqlc.Queries) error {
		vs, err := q.MembershipVersions(ctx, f.a)
		require.NoError(t, err)
		got := map[uuid.UUID]int64{}
		for _, v := range vs {
			got[v.UserID] = v.Version
		}
		require.Equal(t, map[uuid.UUID]int64{alice: 2, bob: 1}, got)
		return nil
	}))
	conn, err := pgx.Connect(ctx, f.ownerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select user_id::text, count(*)::int from refresh_tokens where revoke_time is null group by 1")
	require.NoError(t, err)
	live := map[string]int{}
	for rows.Next() {
		var u string
		var c int
		require.NoError(t, rows.Scan(&u, &c))
		live[u] = c
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]int{bob.String(): 1}, live)
}
