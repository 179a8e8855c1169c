// API keys: list, create (the secret is shown once, here, and never again:
// the API keeps only its hash), revoke. For admins and owners.
import { Role, type ApiKey } from "@quarters/sdk";
import { field, isAdmin, past, roleName, roleSelect, run, table, when, type View } from "./app.js";
import { formValues, h } from "./dom.js";

function keyStatus(k: ApiKey): string {
  if (k.revokeTime) return "revoked";
  if (past(k.expireTime)) return "expired";
  return "active";
}

/** keysView lists the tenant's API keys. */
export const keysView: View = async (ctx, root) => {
  if (!isAdmin(ctx.role)) {
    root.replaceChildren(h("h2", {}, "API keys"), h("p", { class: "note" }, "Admins and owners manage API keys."));
    return;
  }
  const keys: ApiKey[] = [];
  let token = "";
  do {
    const res = await ctx.client.auth.listApiKeys({ pageSize: 100, pageToken: token });
    keys.push(...res.apiKeys);
    token = res.nextPageToken;
  } while (token && keys.length < 1000);
  if (!ctx.alive()) return;

  const list = h("div");
  // The secret lives only in this element: dismissing it (or leaving the
  // page) drops the one copy the console had.
  const secretBox = h("div", { id: "key-secret-box" });
  const render = () => {
    const rows = keys.map((k) => {
      const status = keyStatus(k);
      return h(
        "tr",
        { "data-id": k.id, "data-status": status },
        h("td", {}, k.name),
        h("td", {}, h("code", {}, `${k.prefix}…`)),
        h("td", {}, roleName(k.role)),
        h("td", {}, status),
        h("td", {}, when(k.createTime)),
        h("td", {}, k.lastUsedTime ? when(k.lastUsedTime) : "never"),
        h(
          "td",
          { class: "actions" },
          status === "active"
            ? h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  onclick: (e: Event) =>
                    void run(ctx, e.currentTarget as HTMLButtonElement, async () => {
                      if (!confirm(`Revoke the API key "${k.name}"? Programs using it stop working.`)) return;
                      const res = await ctx.client.auth.revokeApiKey({ id: k.id });
                      if (!ctx.alive()) return;
                      keys[keys.indexOf(k)] = res.apiKey!;
                      ctx.notice(`Revoked the API key "${k.name}".`);
                      render();
                    }),
                },
                "Revoke",
              )
            : null,
        ),
      );
    });
    list.replaceChildren(table("keys", ["Name", "Prefix", "Role", "Status", "Created", "Last used", ""], rows, "No API keys."));
  };

  const showSecret = (k: ApiKey, secret: string) => {
    const copy = h("button", { type: "button" }, "Copy");
    copy.addEventListener("click", () => {
      navigator.clipboard.writeText(secret).then(
        () => ctx.notice("Copied."),
        () => ctx.notice("Copying was refused: select the secret and copy it by hand."),
      );
    });
    secretBox.replaceChildren(
      h(
        "div",
        { class: "secret", role: "status" },
        h("p", {}, `The secret of "${k.name}". Copy it now: it is not shown again.`),
        h("code", { id: "key-secret" }, secret),
        h("div", {}, copy, h("button", { type: "button", onclick: () => secretBox.replaceChildren() }, "I have saved it")),
      ),
    );
  };

  const create = h(
    "form",
    { id: "key-create", "aria-label": "New API key" },
    field("Name", "name", { required: true, maxlength: "100" }),
    // At most the caller's own role.
    roleSelect("Role", ctx.role === Role.OWNER ? [Role.MEMBER, Role.ADMIN, Role.OWNER] : [Role.MEMBER, Role.ADMIN]),
    h("button", { type: "submit" }, "Create key"),
  );
  create.addEventListener("submit", (e) => {
    e.preventDefault();
    void run(ctx, create, async () => {
      const v = formValues(create);
      const res = await ctx.client.auth.createApiKey({ name: v.name, role: Number(v.role) as Role });
      if (!ctx.alive()) return;
      keys.unshift(res.apiKey!);
      create.reset();
      showSecret(res.apiKey!, res.secret);
      render();
    });
  });

  render();
  root.replaceChildren(h("h2", {}, "API keys"), create, secretBox, list);
};
