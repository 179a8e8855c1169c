// Members and invitations: list both, invite by email, revoke a pending
// invitation. Invitations are for admins and owners only.
import { Role, type Invitation, type Member } from "@quarters/sdk";
import { field, isAdmin, past, roleName, roleSelect, run, table, when, type View } from "./app.js";
import { formValues, h } from "./dom.js";

/** invitationStatus says where an invitation stands. */
function invitationStatus(inv: Invitation): string {
  if (inv.revokeTime) return "revoked";
  if (past(inv.expireTime)) return "expired";
  return "pending";
}

/** membersView lists members and, for admins, invitations. */
export const membersView: View = async (ctx, root) => {
  const members: Member[] = [];
  let token = "";
  do {
    const res = await ctx.client.members.listMembers({ pageSize: 100, pageToken: token });
    members.push(...res.members);
    token = res.nextPageToken;
  } while (token && members.length < 1000);
  if (!ctx.alive()) return;

  const memberRows = members.map((m) =>
    h("tr", { "data-id": m.user?.id ?? "" }, h("td", {}, m.user?.email ?? ""), h("td", {}, roleName(m.role)), h("td", {}, when(m.createTime))),
  );
  const parts: Node[] = [h("h2", {}, "Members"), table("members", ["Email", "Role", "Member since"], memberRows, "No members.")];
  if (!isAdmin(ctx.role)) {
    parts.push(h("p", { class: "note" }, "Admins and owners invite people and see the invitations."));
    root.replaceChildren(...parts);
    return;
  }

  const invitations: Invitation[] = [];
  token = "";
  do {
    const res = await ctx.client.members.listInvitations({ pageSize: 100, pageToken: token });
    invitations.push(...res.invitations);
    token = res.nextPageToken;
  } while (token && invitations.length < 1000);
  if (!ctx.alive()) return;

  const list = h("div");
  const render = () => {
    const rows = invitations.map((inv) => {
      const status = invitationStatus(inv);
      return h(
        "tr",
        { "data-id": inv.id, "data-status": status },
        h("td", {}, inv.email),
        h("td", {}, roleName(inv.role)),
        h("td", {}, status),
        h("td", {}, when(inv.expireTime)),
        h(
          "td",
          { class: "actions" },
          status === "pending"
            ? h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  onclick: (e: Event) =>
                    void run(ctx, e.currentTarget as HTMLButtonElement, async () => {
                      const res = await ctx.client.members.revokeInvitation({ id: inv.id });
                      if (!ctx.alive()) return;
                      invitations[invitations.indexOf(inv)] = res.invitation!;
                      ctx.notice(`Revoked the invitation of ${inv.email}.`);
                      render();
                    }),
                },
                "Revoke",
              )
            : null,
        ),
      );
    });
    list.replaceChildren(table("invitations", ["Email", "Role", "Status", "Expires", ""], rows, "No invitations."));
  };

  const invite = h(
    "form",
    { id: "invite", "aria-label": "Invite a member" },
    field("Email", "email", { type: "email", required: true }),
    roleSelect("Role", [Role.MEMBER, Role.ADMIN]),
    h("button", { type: "submit" }, "Invite"),
  );
  invite.addEventListener("submit", (e) => {
    e.preventDefault();
    void run(ctx, invite, async () => {
      const v = formValues(invite);
      const res = await ctx.client.members.inviteMember({ email: v.email, role: Number(v.role) as Role });
      if (!ctx.alive()) return;
      invitations.unshift(res.invitation!);
      invite.reset();
      ctx.notice(`Invited ${res.invitation!.email}: they get an email with a link.`);
      render();
    });
  });

  render();
  parts.push(h("h2", {}, "Invitations"), invite, list);
  root.replaceChildren(...parts);
};
