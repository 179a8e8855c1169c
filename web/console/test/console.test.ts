// The console in a real browser (Debian's Chromium, driven by
// playwright-core) against the real server, which serves the committed,
// embedded build at /console: a person signs in and uses every page, and a
// person in two tenants switches between them without one's data showing
// in the other. Screenshots go to $ARTIFACTS_DIR/console (default
// .ci/artifacts/console), which CI keeps.
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Code, ConnectError } from "../../../sdk/ts/src/index.js";
import { apiUrl, grantAnalytics, mailedToken, password, setRate, signUpOwner, uniqueSlug } from "./helpers.js";

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const artifacts = join(process.env.ARTIFACTS_DIR ?? resolve(import.meta.dirname, "../../../.ci/artifacts"), "console");
let browser: Browser;

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install -y chromium`);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

afterAll(async () => {
  await browser?.close();
});

/** openConsole opens /console in a fresh context and records what goes wrong in the page. */
async function openConsole() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  // A Content-Security-Policy refusal is reported on the console. So is
  // every API error answer, which the console shows in its alert line
  // (and the tests check there): those are not problems.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource: the server responded with a status of")) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on("dialog", (d) => void d.accept());
  const resp = await page.goto(`${apiUrl()}/console/`);
  expect(resp?.status()).toBe(200);
  expect(resp?.headers()["content-security-policy"]).toContain("script-src 'self'");
  return { page, problems, close: () => context.close() };
}

async function signInAs(page: Page, email: string, tenant: string) {
  const form = page.locator("#signin");
  await form.getByLabel("Email").fill(email);
  await form.getByLabel("Password").fill(password);
  await form.getByLabel("Tenant").fill(tenant);
  await form.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#tenant-name").waitFor();
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(artifacts, name), fullPage: true });
const today = () => new Date().toISOString().slice(0, 10);

it("signs in and manages projects, documents, members, API keys, and shows plan and usage", async () => {
  const t = await signUpOwner("c");
  await grantAnalytics(t.id);
  const { page, problems, close } = await openConsole();

  // A wrong password is told, and no session starts.
  const form = page.locator("#signin");
  await form.getByLabel("Email").fill(t.email);
  await form.getByLabel("Password").fill("not the password");
  await form.getByLabel("Tenant").fill(t.slug);
  await form.getByRole("button", { name: "Sign in" }).click();
  await expect.poll(() => page.locator("#alert").textContent()).toBe("Wrong email, password or tenant.");
  await shot(page, "01-signin-refused.png");

  await signInAs(page, t.email, t.slug);
  expect(await page.locator("#tenant-name").textContent()).toBe(t.name);
  expect(await page.locator("#user").textContent()).toBe(`${t.email} · owner`);
  expect(await page.locator("#projects").textContent()).toBe("No projects yet.");

  // Projects: create two, edit one, delete the other.
  const newProject = page.locator("#project-create");
  for (const name of ["Launch plan", "Scratch"]) {
    await newProject.getByLabel("Name").fill(name);
    await newProject.getByLabel("Description").fill(`About ${name}`);
    await newProject.getByRole("button", { name: "Create project" }).click();
    await page.locator("#projects tr", { hasText: name }).waitFor();
  }
  const launch = page.locator("#projects tbody tr", { hasText: "Launch plan" });
  await launch.getByRole("button", { name: "Edit" }).click();
  await page.getByRole("form", { name: "Edit project Launch plan" }).getByLabel("Description").fill("Everything for the launch");
  await page.getByRole("form", { name: "Edit project Launch plan" }).getByRole("button", { name: "Save" }).click();
  await page.locator("#projects tbody tr", { hasText: "Everything for the launch" }).waitFor();
  await page.locator("#projects tbody tr", { hasText: "Scratch" }).getByRole("button", { name: "Delete" }).click();
  await expect.poll(() => page.locator("#projects tbody tr").count()).toBe(1);
  const projects = (await t.api.projects.listProjects({})).projects;
  expect(projects.map((p) => [p.name, p.description])).toEqual([["Launch plan", "Everything for the launch"]]);
  const projectId = projects[0]!.id;

  // Documents of the project: create, edit.
  await page.getByRole("link", { name: "Launch plan" }).click();
  await expect.poll(() => page.url()).toBe(`${apiUrl()}/console/projects/${projectId}`);
  const newDoc = page.locator("#document-create");
  await newDoc.getByLabel("Title").fill("Kickoff notes");
  await newDoc.getByLabel("Content").fill("Agenda: scope, dates, owners.");
  await newDoc.getByRole("button", { name: "Create document" }).click();
  await page.locator("#documents tbody tr", { hasText: "Kickoff notes" }).getByRole("button", { name: "Edit" }).click();
  const editDoc = page.getByRole("form", { name: "Edit document Kickoff notes" });
  await editDoc.getByLabel("Title").fill("Kickoff notes, final");
  await editDoc.getByRole("button", { name: "Save" }).click();
  await page.locator("#documents tbody tr", { hasText: "Kickoff notes, final" }).waitFor();
  const docs = (await t.api.documents.listDocuments({ projectId })).documents;
  expect(docs.map((d) => [d.title, d.content])).toEqual([["Kickoff notes, final", "Agenda: scope, dates, owners."]]);
  // A reload keeps the session (sessionStorage) and the deep link.
  await page.reload();
  await page.locator("#documents tbody tr", { hasText: "Kickoff notes, final" }).waitFor();
  await shot(page, "02-projects-documents.png");

  // Members and invitations: invite two, revoke one.
  await page.getByRole("link", { name: "Members" }).click();
  await page.locator("#members tbody tr", { hasText: t.email }).waitFor();
  const invite = page.locator("#invite");
  const dana = `dana@${t.slug}.example`;
  const eve = `eve@${t.slug}.example`;
  for (const email of [dana, eve]) {
    await invite.getByLabel("Email").fill(email);
    await invite.getByLabel("Role").selectOption({ label: email === dana ? "admin" : "member" });
    await invite.getByRole("button", { name: "Invite" }).click();
    await page.locator("#invitations tbody tr", { hasText: email }).waitFor();
  }
  // The invitation really went out: Dana has the mail with its token.
  expect(await mailedToken(dana, "qi_")).toMatch(/^qi_/);
  await page.locator("#invitations tbody tr", { hasText: eve }).getByRole("button", { name: "Revoke" }).click();
  await expect.poll(() => page.locator("#invitations tbody tr", { hasText: eve }).getAttribute("data-status")).toBe("revoked");
  expect(await page.locator("#invitations tbody tr", { hasText: dana }).getAttribute("data-status")).toBe("pending");
  expect(await page.locator("#invitations tbody tr", { hasText: dana }).locator("td").nth(1).textContent()).toBe("admin");
  const invitations = (await t.api.members.listInvitations({})).invitations;
  // The API lists pending invitations only.
  expect(invitations.map((i) => i.email)).toEqual([dana]);
  await shot(page, "03-members.png");

  // API keys: the secret is shown once, works, and is gone once dismissed.
  await page.getByRole("link", { name: "API keys" }).click();
  const newKey = page.locator("#key-create");
  await newKey.getByLabel("Name").fill("CI deploy");
  await newKey.getByRole("button", { name: "Create key" }).click();
  const secret = (await page.locator("#key-secret").textContent()) ?? "";
  expect(secret).toMatch(/^qk_\S{20,}$/);
  expect(await page.locator(".secret").textContent()).toContain("it is not shown again");
  await shot(page, "04-api-key-secret.png");
  const row = page.locator("#keys tbody tr", { hasText: "CI deploy" });
  const prefix = ((await row.locator("code").textContent()) ?? "").replace(/…$/, "");
  expect(prefix.length).toBeGreaterThan(3);
  expect(secret.startsWith(prefix)).toBe(true);
  const { createQuartersClient } = await import("../../../sdk/ts/src/index.js");
  const withKey = createQuartersClient({ baseUrl: apiUrl(), apiKey: secret, retry: false });
  expect((await withKey.projects.listProjects({})).projects.map((p) => p.name)).toEqual(["Launch plan"]);
  await page.getByRole("button", { name: "I have saved it" }).click();
  expect(await page.locator("#key-secret").count()).toBe(0);
  expect(await page.content()).not.toContain(secret);
  // Nor kept anywhere the page could show it again.
  expect(await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }))).not.toContain(secret);
  await page.getByRole("link", { name: "Projects" }).click();
  await page.getByRole("link", { name: "API keys" }).click();
  await row.waitFor();
  expect(await page.content()).not.toContain(secret);
  expect(await page.locator("#key-secret").count()).toBe(0);
  await row.getByRole("button", { name: "Revoke" }).click();
  await expect.poll(() => row.getAttribute("data-status")).toBe("revoked");
  const refused = await withKey.projects.listProjects({}).then(
    () => undefined,
    (err: unknown) => ConnectError.from(err).code,
  );
  expect(refused).toBe(Code.Unauthenticated);
  await shot(page, "05-api-keys.png");

  // Refusals for the chart: a burst over a tight rate limit, counted here.
  await setRate(t.id, 60, 2);
  const outcomes = await Promise.all(
    Array.from({ length: 12 }, () =>
      t.api.projects.listProjects({}).then(
        () => "ok",
        (err: unknown) => (ConnectError.from(err).code === Code.ResourceExhausted ? "refused" : `other: ${String(err)}`),
      ),
    ),
  );
  await setRate(t.id, 100_000, 100_000);
  const refusals = outcomes.filter((o) => o === "refused").length;
  expect(outcomes.filter((o) => o !== "ok" && o !== "refused")).toEqual([]);
  expect(refusals).toBeGreaterThan(0);

  // Plan and usage.
  await page.getByRole("link", { name: "Plan and usage" }).click();
  await page.locator("#usage-chart").waitFor();
  expect(await page.locator("#plan-name").textContent()).toBe("free");
  expect(await page.locator("#plan").textContent()).toContain("features: analytics");
  // One project of the free plan's 5; seats: the owner and Dana's pending invitation (Eve's is revoked) of 3.
  expect([await page.locator("#usage-projects").getAttribute("data-used"), await page.locator("#usage-projects").getAttribute("data-limit")]).toEqual(["1", "5"]);
  expect([await page.locator("#usage-members").getAttribute("data-used"), await page.locator("#usage-members").getAttribute("data-limit")]).toEqual(["2", "3"]);
  expect(await page.locator("#usage-calls").getAttribute("data-limit")).toBe("10000");
  expect(await page.locator("#usage-chart g.day").count()).toBe(30);
  const day = page.locator(`#usage-chart g.day[data-date="${today()}"]`);
  expect(await day.getAttribute("data-refusals")).toBe(String(refusals));
  // Every call above was counted: at least the console's and this test's.
  const requests = Number(await day.getAttribute("data-requests"));
  expect(requests).toBeGreaterThanOrEqual(12 - refusals + 10);
  expect(await page.locator("#total-refusals").textContent()).toBe(String(refusals));
  expect(Number(await page.locator("#usage-calls").getAttribute("data-used"))).toBe(requests);
  // The bars are drawn to scale: today's requests bar is the tallest.
  const heights = await page.locator("#usage-chart rect.requests").evaluateAll((rs) => rs.map((r) => Number(r.getAttribute("height"))));
  expect(Math.max(...heights)).toBe(heights[heights.length - 1]);
  expect(heights[heights.length - 1]).toBeGreaterThan(0);
  await shot(page, "06-usage.png");

  // Sign out ends the session: the sign-in form is back after a reload.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.locator("#signin").waitFor();
  await page.reload();
  await page.locator("#signin").waitFor();

  expect(problems).toEqual([]);
  await close();
});

it("shows only the current tenant's data when switching tenants", async () => {
  // The same person owns both (an address that names neither).
  const person = `pat@${uniqueSlug("p")}.example`;
  const a = await signUpOwner("alpha", person);
  const b = await signUpOwner("beta", person, true);
  // Alpha's data, made through the API.
  const { project: alphaProject } = await a.api.projects.createProject({ name: "Alpha secret project" });
  await a.api.documents.createDocument({ projectId: alphaProject!.id, title: "Alpha secret document" });
  await a.api.members.inviteMember({ email: `alpha-invitee@${a.slug}.example`, role: 1 });
  await a.api.auth.createApiKey({ name: "alpha secret key", role: 1 });
  await b.api.projects.createProject({ name: "Beta project" });

  const { page, problems, close } = await openConsole();
  await signInAs(page, a.email, a.slug);
  await page.getByRole("link", { name: "Alpha secret project" }).click();
  await page.locator("#documents tbody tr", { hasText: "Alpha secret document" }).waitFor();
  const switcher = page.locator("#tenant-switch");
  expect((await switcher.locator("option").allTextContents()).sort()).toEqual([`${a.name} (${a.slug})`, `${b.name} (${b.slug})`].sort());
  await shot(page, "07-tenant-alpha.png");

  // Switch to Beta: every page shows Beta's rows and nothing of Alpha's.
  await switcher.selectOption(b.slug);
  await expect.poll(() => page.locator("#tenant-name").textContent()).toBe(b.name);
  await page.locator("#projects tbody tr", { hasText: "Beta project" }).waitFor();
  expect(page.url()).toBe(`${apiUrl()}/console/projects`);
  // The page, the alert line included; the header names both tenants.
  const noAlpha = async () => {
    const text = `${await page.locator("#view").textContent()} ${await page.locator("#alert").textContent()}`;
    expect(text.toLowerCase()).not.toContain("alpha");
  };
  await noAlpha();
  expect(await page.locator("#projects tbody tr").count()).toBe(1);
  for (const [link, ready] of [
    ["Members", "#invitations"],
    ["API keys", "#keys"],
    ["Plan and usage", "#plan"],
  ] as const) {
    await page.getByRole("link", { name: link }).click();
    await page.locator(ready).waitFor();
    await noAlpha();
  }
  // Beta has no analytics: the console says so instead of a chart.
  expect(await page.locator("#analytics-unavailable").textContent()).toContain("does not include analytics");
  expect(await page.locator("#usage-projects").getAttribute("data-used")).toBe("1");
  await page.getByRole("link", { name: "API keys" }).click();
  expect((await page.locator("#keys tbody tr").allTextContents()).every((r) => !r.includes("alpha secret key"))).toBe(true);
  await shot(page, "08-tenant-beta.png");

  // A link to Alpha's project, opened in Beta, finds nothing.
  await page.goto(`${apiUrl()}/console/projects/${alphaProject!.id}`);
  await expect.poll(() => page.locator("#alert").textContent()).toBe("Not found: it may have been deleted.");
  await noAlpha();
  expect(await page.locator("#documents").count()).toBe(0);

  // And back to Alpha: its rows again, none of Beta's.
  await page.locator("#tenant-switch").selectOption(a.slug);
  await expect.poll(() => page.locator("#tenant-name").textContent()).toBe(a.name);
  await page.locator("#projects tbody tr", { hasText: "Alpha secret project" }).waitFor();
  expect(await page.locator("#projects tbody tr").count()).toBe(1);
  expect(((await page.locator("#view").textContent()) ?? "").includes("Beta project")).toBe(false);
  expect(problems).toEqual([]);
  await close();
});

it("gives a member the pages a member may use, and says why the others are closed", async () => {
  const t = await signUpOwner("m");
  const sam = `sam@${t.slug}.example`;
  await t.api.members.inviteMember({ email: sam, role: 1 });
  // Sam accepts the mailed invitation, choosing the password.
  const anon = (await import("../../../sdk/ts/src/index.js")).createQuartersClient({ baseUrl: apiUrl() });
  await anon.members.acceptInvitation({ token: await mailedToken(sam, "qi_"), password });
  await t.api.projects.createProject({ name: "Shared roadmap" });

  const { page, problems, close } = await openConsole();
  await signInAs(page, sam, t.slug);
  expect(await page.locator("#user").textContent()).toBe(`${sam} · member`);
  await page.locator("#projects tbody tr", { hasText: "Shared roadmap" }).waitFor();
  await page.getByRole("link", { name: "Members" }).click();
  await page.locator("#members tbody tr", { hasText: sam }).waitFor();
  expect((await page.locator("#members tbody tr").allTextContents()).length).toBe(2);
  expect(await page.locator("#invite").count()).toBe(0);
  expect(await page.locator("#view .note").textContent()).toBe("Admins and owners invite people and see the invitations.");
  await page.getByRole("link", { name: "API keys" }).click();
  await expect.poll(() => page.locator("#view .note").textContent()).toBe("Admins and owners manage API keys.");
  expect(await page.locator("#key-create").count()).toBe(0);
  // The free plan has no analytics: the usage page says so.
  await page.getByRole("link", { name: "Plan and usage" }).click();
  await expect.poll(() => page.locator("#analytics-unavailable").textContent()).toContain("The free plan does not include analytics.");
  expect(await page.locator("#analytics-unavailable a").getAttribute("href")).toMatch(/^https?:\/\//);
  await shot(page, "09-member.png");
  expect(problems).toEqual([]);
  await close();
});
