// The Quarters tenant console: sign in, then projects and documents,
// members and invitations, API keys, and plan and usage, for one tenant at
// a time, switching between the tenants the person belongs to. Everything
// goes through the TypeScript SDK to the API on the same origin.
import {
  createQuartersClient,
  createSession,
  fromJson,
  isSessionEnded,
  signIn,
  toJson,
  SessionSchema,
  type GetCurrentUserResponse,
  type QuartersClient,
  type QuartersSession,
  type Session,
} from "@quarters/sdk";
import { roleName, run, field, type Ctx, type View } from "./app.js";
import { formValues, h } from "./dom.js";
import { describe } from "./errors.js";
import { keysView } from "./keys.js";
import { membersView } from "./members.js";
import { projectsView } from "./projects.js";
import { usageView } from "./usage.js";

/** base is where the server mounts the console. */
const base = "/console";
/**
 * storageKey holds the session in sessionStorage: it survives a reload of
 * this tab, not the tab itself, and each refresh replaces it (the old
 * refresh token no longer works).
 */
const storageKey = "quarters.console.session";

const pages: { name: string; title: string; view: View }[] = [
  { name: "projects", title: "Projects", view: projectsView },
  { name: "members", title: "Members", view: membersView },
  { name: "keys", title: "API keys", view: keysView },
  { name: "usage", title: "Plan and usage", view: usageView },
];

const app = document.getElementById("app")!;
const alertLine = h("p", { id: "alert", role: "alert" });

function say(msg: string, kind: "error" | "notice") {
  alertLine.textContent = msg;
  alertLine.className = msg ? kind : "";
}

function save(s: Session) {
  sessionStorage.setItem(storageKey, JSON.stringify(toJson(SessionSchema, s)));
}

function stored(): Session | undefined {
  const raw = sessionStorage.getItem(storageKey);
  if (!raw) return undefined;
  try {
    return fromJson(SessionSchema, JSON.parse(raw));
  } catch {
    sessionStorage.removeItem(storageKey);
    return undefined;
  }
}

/** route splits the location into a page name and its arguments. */
function route(): [string, string[]] {
  const rest = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : "";
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  const name = parts[0] && pages.some((p) => p.name === parts[0]) ? parts[0] : "projects";
  return [name, parts.slice(1)];
}

function showSignIn(message = "") {
  const form = h(
    "form",
    { id: "signin", "aria-label": "Sign in" },
    h("h1", {}, "Quarters console"),
    field("Email", "email", { type: "email", required: true, autocomplete: "username" }),
    field("Password", "password", { type: "password", required: true, autocomplete: "current-password" }),
    field("Tenant", "tenant", { required: true, placeholder: "your-team", autocomplete: "organization" }),
    h("button", { type: "submit" }, "Sign in"),
  );
  const ctxless = { fail: (err: unknown) => say(describe(err), "error") } as Ctx;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void run(ctxless, form, async () => {
      const v = formValues(form);
      const s = await signIn({ baseUrl: location.origin, email: v.email, password: v.password, tenant: v.tenant.trim() });
      save(s);
      say("", "notice");
      await start(s);
    });
  });
  app.replaceChildren(form, alertLine);
  say(message, "error");
}

/** start opens the console for a signed-in session. */
async function start(s: Session) {
  const session = createSession({ baseUrl: location.origin, session: s, onRefresh: save });
  await enter(session, createQuartersClient({ baseUrl: location.origin, session }));
}

/**
 * enter shows the console for the session's current tenant. A tenant
 * switch comes back here with the same session, so only one object ever
 * holds (and refreshes) the refresh token.
 */
async function enter(session: QuartersSession, client: QuartersClient) {
  let me: GetCurrentUserResponse;
  try {
    me = await client.members.getCurrentUser({});
  } catch (err) {
    sessionStorage.removeItem(storageKey);
    showSignIn(describe(err));
    return;
  }
  shell(session, client, me);
}

/** generation counts the views shown; a view whose number is not current is gone. */
let generation = 0;

function shell(session: QuartersSession, client: QuartersClient, me: GetCurrentUserResponse) {
  const current = me.tenants.find((t) => t.tenantId === me.tenantId);
  const switcher = h(
    "select",
    { id: "tenant-switch", name: "tenant", "aria-label": "Tenant" },
    ...me.tenants.map((t) => h("option", { value: t.tenantSlug, selected: t.tenantId === me.tenantId }, `${t.tenantName} (${t.tenantSlug})`)),
  );
  switcher.addEventListener("change", () => {
    const slug = switcher.value;
    generation++; // whatever is loading belongs to the tenant being left
    view.replaceChildren(h("p", { class: "loading" }, "Switching…"));
    session.switchTenant(slug).then(
      async () => {
        say("", "notice");
        history.pushState(null, "", `${base}/${route()[0]}`);
        await enter(session, client);
      },
      (err: unknown) => {
        say(describe(err), "error");
        switcher.value = current?.tenantSlug ?? "";
        void show();
      },
    );
  });
  const signOut = h("button", { type: "button", id: "signout" }, "Sign out");
  signOut.addEventListener("click", () => {
    generation++;
    session.signOut().then(
      () => {
        sessionStorage.removeItem(storageKey);
        showSignIn();
      },
      (err: unknown) => say(describe(err), "error"),
    );
  });
  const nav = h("nav", {}, ...pages.map((p) => h("a", { href: `${base}/${p.name}`, "data-nav": "", "data-page": p.name }, p.title)));
  const view = h("main", { id: "view" });
  app.replaceChildren(
    h(
      "header",
      {},
      h("strong", { class: "brand" }, "Quarters"),
      h("span", { id: "tenant-name" }, current?.tenantName ?? me.tenantId),
      h("label", { class: "switch" }, "Tenant ", switcher),
      h("span", { class: "who" }, h("span", { id: "user" }, `${me.user?.email ?? ""} · ${roleName(me.role)}`), signOut),
    ),
    nav,
    alertLine,
    view,
  );

  const show = async () => {
    const mine = ++generation;
    const [name, args] = route();
    for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.page === name);
    const ctx: Ctx = {
      client,
      session,
      role: me.role,
      alive: () => mine === generation,
      fail: (err) => {
        if (mine !== generation) return;
        if (isSessionEnded(err)) {
          sessionStorage.removeItem(storageKey);
          showSignIn(describe(err));
          return;
        }
        say(describe(err), "error");
      },
      notice: (msg) => mine === generation && say(msg, "notice"),
      go: (path) => {
        history.pushState(null, "", `${base}/${path}`);
        void show();
      },
    };
    const root = h("div", { "data-page": name });
    view.replaceChildren(root);
    root.append(h("p", { class: "loading" }, "Loading…"));
    try {
      await pages.find((p) => p.name === name)!.view(ctx, root, args);
    } catch (err) {
      ctx.fail(err);
      if (ctx.alive()) root.replaceChildren();
    }
  };
  navigate = (path) => {
    say("", "notice");
    history.pushState(null, "", path);
    void show();
  };
  void show();
}

/** navigate opens a console path; set once signed in. */
let navigate: ((path: string) => void) | undefined;

// Links marked data-nav move within the console without reloading it.
document.addEventListener("click", (e) => {
  const a = (e.target as Element).closest?.("a[data-nav]") as HTMLAnchorElement | null;
  if (!a || !navigate || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.pathname);
});
window.addEventListener("popstate", () => navigate?.(location.pathname));

const s = stored();
if (s) void start(s);
else showSignIn();
