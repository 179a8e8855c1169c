// What every view of the console gets: the API client of the signed-in
// person, their role in the current tenant, and ways to report.
import { Role, type QuartersClient, type QuartersSession } from "@quarters/sdk";
import { h } from "./dom.js";

/** Ctx is a view's handle on the console. */
export interface Ctx {
  client: QuartersClient;
  session: QuartersSession;
  /** The person's role in the current tenant. */
  role: Role;
  /**
   * alive is false once the view was replaced (another page, another
   * tenant): an answer that arrives later must not be shown, or one
   * tenant's rows could appear under another's name.
   */
  alive(): boolean;
  /** fail shows err in the alert line. */
  fail(err: unknown): void;
  /** notice shows msg in the alert line. */
  notice(msg: string): void;
  /** go opens another page of the console, e.g. "projects/<id>". */
  go(path: string): void;
}

/** A View fills root with a page; args are the path segments after its name. */
export type View = (ctx: Ctx, root: HTMLElement, args: string[]) => Promise<void>;

/** isAdmin reports whether role may manage members and API keys. */
export const isAdmin = (role: Role) => role === Role.ADMIN || role === Role.OWNER;

/** roleName is a role as people say it. */
export function roleName(role: Role): string {
  switch (role) {
    case Role.OWNER:
      return "owner";
    case Role.ADMIN:
      return "admin";
    case Role.MEMBER:
      return "member";
    default:
      return "unknown";
  }
}

/** when formats a protobuf Timestamp as a local date and time, "" when unset. */
export function when(ts: { seconds: bigint; nanos: number } | undefined): string {
  if (!ts) return "";
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6)).toLocaleString();
}

/** past reports whether ts is set and before now. */
export function past(ts: { seconds: bigint } | undefined): boolean {
  return ts !== undefined && Number(ts.seconds) * 1000 < Date.now();
}

/**
 * run calls fn for a button or form, disabling it meanwhile, and reports a
 * failure in the alert line instead of throwing.
 */
export async function run(ctx: Ctx, el: HTMLButtonElement | HTMLFormElement, fn: () => Promise<void>): Promise<void> {
  const controls = el instanceof HTMLFormElement ? [...el.querySelectorAll("button")] : [el];
  for (const c of controls) c.disabled = true;
  try {
    await fn();
  } catch (err) {
    ctx.fail(err);
  } finally {
    for (const c of controls) c.disabled = false;
  }
}

/** field is a labelled input. */
export function field(label: string, name: string, attrs: Record<string, string | boolean> = {}): HTMLLabelElement {
  return h("label", {}, label, h("input", { name, ...attrs }));
}

/** roleSelect is a labelled choice of roles. */
export function roleSelect(label: string, roles: Role[]): HTMLLabelElement {
  return h("label", {}, label, h("select", { name: "role" }, ...roles.map((r) => h("option", { value: String(r) }, roleName(r)))));
}

/** table builds a table with a header row; each row is a list of cells. */
export function table(id: string, headers: string[], rows: HTMLTableRowElement[], empty: string): HTMLElement {
  if (rows.length === 0) return h("p", { id, class: "empty" }, empty);
  return h("table", { id }, h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", {}, t)))), h("tbody", {}, ...rows));
}

