// The published shape: `npm pack`, install the tarball into a fresh
import { createRequire } from "node:module";
// project with TypeScript, and type-check a consumer of both entries.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const pkgDir = resolve(import.meta.dirname, "..");
const work = mkdtempSync(join(tmpdir(), "quarters-sdk-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_loglevel: "error", npm_config_fund: "false", npm_config_audit: "false" } });

it("npm pack installs and type-checks in a fresh project", { timeout: 240_000 }, () => {
  if (!existsSync(join(pkgDir, "dist/index.js")) || !existsSync(join(pkgDir, "dist/node.d.ts"))) {
    run("npm", ["run", "build"], pkgDir);
  }
  run("npm", ["pack", "--pack-destination", work], pkgDir);
  const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
  expect(tgz).toBeDefined();
  const tarball = join(work, tgz!);
  const listing = run("tar", ["-tzf", tarball], work);
  expect(listing).toContain("package/dist/index.d.ts");
  expect(listing).toContain("package/dist/node.js");
  expect(listing).not.toContain("package/src/");
  expect(listing).not.toContain("package/test/");
  // The licence travels with the package, the repository's own text, and
  // the metadata names it.
  expect(listing).toContain("package/LICENSE");
  const license = run("tar", ["-xzOf", tarball, "package/LICENSE"], work);
  expect(license).toContain("Apache License\n                           Version 2.0, January 2004");
  expect(license).toBe(readFileSync(resolve(pkgDir, "../../LICENSE"), "utf8"));
  const meta = JSON.parse(run("tar", ["-xzOf", tarball, "package/package.json"], work));
  expect(meta.license).toBe("Apache-2.0");
  expect(meta.repository).toEqual({ type: "git", url: "git+https://github.com/quarters-dev/quarters.git", directory: "sdk/ts" });

  const app = join(work, "app");
  execFileSync("mkdir", [app]);
  run("npm", ["init", "-y"], app);
  run("npm", ["pkg", "set", "type=module"], app);
  const ts = require("../package.json").devDependencies.typescript as string;
  const types = require("../package.json").devDependencies["@types/node"] as string;
  run("npm", ["install", "--no-audit", "--no-fund", tarball, `typescript@${ts}`, `@types/node@${types}`], app);
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"], lib: ["ES2022", "DOM"] },
      include: ["consumer.ts"],
    }),
  );
  writeFileSync(
    join(app, "consumer.ts"),
    `import { createQuartersClient, createSession, signIn, isSessionEnded, isNotFound, rateLimited, featureNotAvailable, violations, validate, create, CreateTenantRequestSchema, Role, type QuartersClient, type Project, type Session } from "@quarters/sdk";
import { createNodeTransport } from "@quarters/sdk/node";

const baseUrl = "http://localhost:8080";
const q: QuartersClient = createQuartersClient({ baseUrl, apiKey: "qk_x", transport: createNodeTransport({ baseUrl }), retry: { maxAttempts: 2 } });
export async function main(): Promise<number> {
  try {
    const res = await q.projects.listProjects({ pageSize: 10 });
    const first: Project | undefined = res.projects[0];
    return first ? first.name.length : 0;
  } catch (err) {
    const wait: number | undefined = rateLimited(err)?.retryAfterMs;
    const f: string | undefined = featureNotAvailable(err)?.upgradeUrl;
    const fields: string[] = violations(err).map((v) => v.field);
    return isNotFound(err) ? -1 : (wait ?? 0) + (f?.length ?? 0) + fields.length;
  }
}
export const local = validate(create(CreateTenantRequestSchema, { slug: "x" })).length;
export async function signedIn(save: (s: Session) => Promise<void>): Promise<Role | undefined> {
  const session = await signIn({ baseUrl, email: "ann@example.com", password: "pw", tenant: "acme" });
  const s = createSession({ baseUrl, session, onRefresh: save, refreshBeforeMs: 30_000 });
  const q2 = createQuartersClient({ baseUrl, session: s });
  try {
    const me = await q2.members.getCurrentUser({});
    await s.switchTenant("other");
    return me.role;
  } catch (err) {
    if (isSessionEnded(err)) await s.signOut();
    return undefined;
  }
}
// @ts-expect-error listProjects takes a ListProjectsRequest, not a number
q.projects.listProjects(42);
`,
  );
  run(join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], app);
});
