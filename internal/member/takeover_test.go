package member_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// The reproductions of issue 9's V1, as an attacker runs them: only
// public RPCs and the attacker's own tenant, nothing the attacker could
// not do against a live server. (They use no helper newer than the bug, so
// they run against the code before the fix, where they fail.)

// TestTakeoverByInvitation is V1's first path: the attacker's tenant
// invites the victim's email and accepts the invitation with a password of
// its choosing, which (before the fix) became the victim's password
// everywhere, owner of globex-x included. Now the inviter never holds the
// token, and nothing it can send accepts anything.
func TestTakeoverByInvitation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	apitest.SignUpVictim(t, s)
	evil := apitest.AttackerTenant(t, s, "evil-x")

	resp, err := evil.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: apitest.VictimEmail, Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err)
	stolen := resp.Msg.GetToken()
	// Whatever the attacker holds, accepting with it fails: an empty
	// token is refused by validation, a real one (the bug) must not exist.
	_, err = apitest.AcceptInvitation(s, stolen, apitest.MalloryChose)
	require.Error(t, err, "the attacker accepted the victim's invitation")
	require.Empty(t, stolen, "the inviter got the invitation token")

	apitest.RequireNoSignIn(t, s, apitest.VictimEmail, apitest.MalloryChose, "globex-x", "evil-x")
}

// TestTakeoverBySignUp is V1's second path: a sign-up naming the victim's
// email as owner, with the attacker's password, set that password on the
// victim's account and signed the attacker in as the victim.
func TestTakeoverBySignUp(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	apitest.SignUpVictim(t, s)

	resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "evil-y", Name: "Evil", OwnerEmail: apitest.VictimEmail, OwnerPassword: apitest.MalloryChose,
	}))
	require.NoError(t, err, "a sign-up answers the same whether the email has an account")
	require.Nil(t, resp.Msg.GetSession(), "the sign-up signed the attacker in as the victim")
	require.Empty(t, resp.Msg.GetOwnerInvitationToken())

	apitest.RequireNoSignIn(t, s, apitest.VictimEmail, apitest.MalloryChose, "globex-x", "evil-y")
}
