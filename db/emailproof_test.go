package db_test

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// TestEmailTokenIssue: a token is issued for an existing user only, a
// verification only for an unverified address; a retried job replaces
// its token (keeping the expiry) and sends nothing once it was used; at
// most MaxLive are live.
func TestEmailTokenIssue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	alice := f.member(t, f.a, "Alice@Example.com", "owner")
	issue := func(email, purpose, token string, job int64) (db.IssuedToken, error) {
		return f.db.EmailTokenIssue(ctx, db.EmailTokenIssueParams{
			Email: email, Purpose: purpose, Hash: hashOf(token), TTL: time.Hour, JobID: job, MaxLive: 2,
		})
	}
	_, err := issue("nobody@example.com", db.PurposeSetPassword, "t0", 1)
	require.ErrorIs(t, err, db.ErrNotFound)

	got, err := issue("alice@EXAMPLE.com", db.PurposeVerifyEmail, "v1", 2)
	require.NoError(t, err)
	require.Equal(t, alice, got.UserID)
	require.Equal(t, "Alice@Example.com", got.Email, "sent to the address as stored")
	require.WithinDuration(t, time.Now().Add(time.Hour), got.ExpireTime, time.Minute)

	// The same job again: its token is replaced, the expiry kept.
	again, err := issue("alice@example.com", db.PurposeVerifyEmail, "v1-retry", 2)
	require.NoError(t, err)
	require.Equal(t, got.ExpireTime, again.ExpireTime)
	_, err = f.db.UserVerifyEmail(ctx, hashOf("v1"))
	require.ErrorIs(t, err, db.ErrNotFound, "the first attempt's token was replaced")
	_, err = f.db.UserVerifyEmail(ctx, hashOf("v1-retry"))
	require.NoError(t, err)
	_, err = f.db.UserVerifyEmail(ctx, hashOf("v1-retry"))
	require.ErrorIs(t, err, db.ErrNotFound, "once")
	_, err = issue("alice@example.com", db.PurposeVerifyEmail, "v1-late", 2)
	require.ErrorIs(t, err, db.ErrNotFound, "a used job's token is not minted again")
	_, err = issue("alice@example.com", db.PurposeVerifyEmail, "v2", 3)
	require.ErrorIs(t, err, db.ErrNotFound, "the address is verified")

	// The cap: two live set_password tokens, the third is refused.
	for i, tok := range []string{"p1", "p2"} {
		_, err := issue("alice@example.com", db.PurposeSetPassword, tok, int64(10+i))
		require.NoError(t, err)
	}
	_, err = issue("alice@example.com", db.PurposeSetPassword, "p3", 12)
	require.ErrorIs(t, err, db.ErrNotFound)

	// Using one set_password token kills the other and ends sessions.
	require.NoError(t, f.db.ActAs(ctx, f.a, func(q *dbsqlc.Queries) error {
		_, err := q.RefreshTokenInsert(ctx, dbsqlc.RefreshTokenInsertParams{
			TenantID: f.a, UserID: alice, FamilyID: uuid.New(), TokenHash: uuid.New().NodeID(), ExpireTime: time.Now().Add(time.Hour)})
		return err
	}))
	user, tenants, err := f.db.UserPasswordReset(ctx, hashOf("p2"), "$argon2id$new")
	require.NoError(t, err)
	require.Equal(t, alice, user)
	require.Equal(t, []uuid.UUID{f.a}, tenants)
	_, _, err = f.db.UserPasswordReset(ctx, hashOf("p1"), "$argon2id$other")
	require.ErrorIs(t, err, db.ErrNotFound, "the other live link died with the reset")
	_, _, err = f.db.UserPasswordReset(ctx, hashOf("v1-retry"), "$argon2id$other")
	require.ErrorIs(t, err, db.ErrNotFound, "a verification token sets no password")
	creds, err := f.db.UserCredentials(ctx, "alice@example.com")
	require.NoError(t, err)
	require.Equal(t, "$argon2id$new", *creds.PasswordHash)
	require.Equal(t, 0, countLiveRefresh(t, f))

	// Changing the password is a compare-and-set on the checked hash.
	_, err = f.db.UserPasswordChange(ctx, alice, "$argon2id$stale", "$argon2id$next")
	require.ErrorIs(t, err, db.ErrPasswordChanged)
	tenants, err = f.db.UserPasswordChange(ctx, alice, "$argon2id$new", "$argon2id$next")
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{f.a}, tenants)
}

func countLiveRefresh(t *testing.T, f *fixture) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, f.ownerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "select count(*) from refresh_tokens where revoke_time is null").Scan(&n))
	return n
}

// TestEmailTokensUnreachable: the app role cannot read or write
// email_tokens, in a tenant's transaction or outside one.
func TestEmailTokensUnreachable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.db.Pool().Exec(ctx, "select count(*) from email_tokens")
	require.Error(t, err)
	err = f.db.ActAs(ctx, f.a, func(q *dbsqlc.Queries) error {
		_, err := f.db.Pool().Exec(ctx, "insert into email_tokens (user_id, purpose, token_hash, expire_time) values (gen_random_uuid(), 'set_password', '\\x00', now())")
		return err
	})
	require.Error(t, err)
	require.False(t, errors.Is(err, db.ErrNotFound))
}
