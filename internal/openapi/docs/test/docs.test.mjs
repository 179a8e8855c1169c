// The /docs page in a real browser (Debian's Chromium, driven by
// playwright-core): the real server (go build from the repository root,
// with its own PostgreSQL in a temporary data directory) serves the page,
// Redoc and the OpenAPI document, and Redoc renders the operations from
// it, loading nothing from any other origin.
import { spawn, execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const repoRoot = resolve(import.meta.dirname, "../../../..");
const work = mkdtempSync(join(tmpdir(), "quarters-docs-"));
let child;
let url = "";
let browser;

before(async () => {
  chmodSync(work, 0o755);
  const bin = join(work, "quarters");
  const env = { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? "local" };
  execFileSync("go", ["build", "-o", bin, "./cmd/quarters"], { cwd: repoRoot, env, stdio: "inherit" });
  const dataDir = join(work, "data");
  mkdirSync(dataDir, { mode: 0o755 });
  // Only these variables: no DATABASE_URL or REDIS_URL from the caller.
  child = spawn(bin, [], {
    cwd: work,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? work,
      QUARTERS_ADDR: "127.0.0.1:0",
      QUARTERS_DATA_DIR: dataDir,
      QUARTERS_MAILBOX_DIR: join(work, "mailbox"),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderrTail = "";
  child.stderr.on("data", (b) => (stderrTail = (stderrTail + b.toString()).slice(-4000)));
  url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start in 90 s; stderr:\n${stderrTail}`)), 90_000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /Quarters is listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        ok(m[1].replace(/\/+$/, ""));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`server exited (${code}) before listening; stderr:\n${stderrTail}`));
    });
  });
  child.stdout.resume();
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install -y chromium`);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
  rmSync(work, { recursive: true, force: true, maxRetries: 3 });
});

test("/docs renders the API's operations from /openapi.yaml, offline", { timeout: 120_000 }, async () => {
  const page = await browser.newPage();
  const origin = new URL(url).origin;
  const foreign = [];
  const problems = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin !== origin && u.protocol !== "data:" && u.protocol !== "blob:") foreign.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  const specLoaded = page.waitForResponse((r) => r.url() === `${url}/openapi.yaml` && r.status() === 200);

  const resp = await page.goto(`${url}/docs`);
  assert.equal(resp.status(), 200);
  await specLoaded;
  // Redoc's title and an operation from the sidebar and the middle panel.
  await page.getByRole("heading", { name: /Quarters API/ }).first().waitFor({ timeout: 60_000 });
  // The operation's heading (its accessible name also has its anchor's).
  const op = page.locator("h2", { hasText: /^CreateProject\s*$/ }).first();
  await op.waitFor({ timeout: 60_000 });
  assert.equal((await op.innerText()).trim(), "CreateProject");
  // Every service's operations are in the sidebar (collapsed, so attached
  // rather than visible).
  await page.locator('li[role=menuitem][aria-label="ListDocuments"]').first().waitFor({ state: "attached", timeout: 30_000 });
  // The security and error responses the document declares are shown.
  const text = await page.locator("body").innerText();
  assert.match(text, /bearer/i, "the security scheme is rendered");
  assert.match(text, /\b429\b/, "the error responses are rendered");

  assert.deepEqual(foreign, [], "nothing is loaded from another origin");
  assert.deepEqual(problems, [], "no console errors (a CSP violation would be one)");
  // For CI artifacts: DOCS_SCREENSHOT_DIR=<dir> keeps a picture of the page.
  if (process.env.DOCS_SCREENSHOT_DIR) {
    await page.screenshot({ path: join(process.env.DOCS_SCREENSHOT_DIR, "docs.png") });
  }
});
