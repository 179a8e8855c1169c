// A real browser (Debian's Chromium, driven by playwright-core) loads a page
// from one origin that calls the API on another: the SDK's fetch transport,
// CORS preflights (Authorization is not a simple header) and exposed
// rate-limit headers, end to end.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { apiUrl, mailedToken } from "./helpers.js";

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const work = mkdtempSync(join(tmpdir(), "quarters-sdk-browser-"));
let server: Server;
let pageOrigin = "";
let browser: Browser;

beforeAll(async () => {
  await build({
    entryPoints: [resolve(import.meta.dirname, "browser/page.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(work, "page.js"),
    logLevel: "error",
  });
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Quarters SDK</title></head><body><script type="module" src="/page.js"></script></body></html>`;
  server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/page.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" }).end(readFileSync(join(work, "page.js")));
    } else if (path === "/") {
      res.writeHead(200, { "Content-Type": "text/html" }).end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no address");
  pageOrigin = `http://127.0.0.1:${addr.port}`;
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install -y chromium`);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  rmSync(work, { recursive: true, force: true });
});

it("signs up, creates, lists and refreshes a session from another origin", { timeout: 90_000 }, async () => {
  const api = apiUrl();
  expect(new URL(api).origin).not.toBe(pageOrigin);
  const page = await browser.newPage();
  await page.exposeFunction("mailedToken", (to: string, prefix: string) => mailedToken(to, prefix));
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  const apiRequests: { url: string; method: string; headers: Record<string, string>; status?: number }[] = [];
  page.on("requestfinished", async (req) => {
    if (!req.url().startsWith(api)) return;
    const resp = await req.response();
    apiRequests.push({ url: req.url(), method: req.method(), headers: await req.allHeaders(), status: resp?.status() });
  });

  // Preflights are not page requests; DevTools' network domain reports
  // them (as OPTIONS requests), with the server's answer.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const preflights = new Map<string, { url: string; method: string; status?: number; maxAge?: string; allowHeaders?: string }>();
  const allRequests: string[] = [];
  cdp.on("Network.requestWillBeSent", (e) => {
    allRequests.push(`${e.type} ${e.request.method} ${e.request.url}`);
    if (e.request.method === "OPTIONS") preflights.set(e.requestId, { url: e.request.url, method: e.request.method });
  });
  cdp.on("Network.responseReceived", (e) => {
    const p = preflights.get(e.requestId);
    if (!p) return;
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    p.status = e.response.status;
    p.maxAge = h["access-control-max-age"];
    p.allowHeaders = h["access-control-allow-headers"];
  });

  await page.goto(`${pageOrigin}/?api=${encodeURIComponent(api)}`);
  await page.waitForSelector("#done", { state: "attached", timeout: 60_000 });
  const done = await page.textContent("#done");
  expect(done, consoleLines.join("\n")).toBe("ok");
  expect(await page.textContent("#titles")).toBe("Browser kickoff");
  // Readable from script only if CORS exposes it.
  const remaining = await page.textContent("#remaining");
  expect(remaining).toMatch(/^\d+$/);
  expect(await page.textContent("#me")).toMatch(/^ann@b-.*\.example 1$/);

  // The cross-origin calls carried Authorization and Origin, which only a
  // successful CORS preflight allows.
  const list = apiRequests.find((r) => r.url.endsWith("/quarters.v1.DocumentService/ListDocuments"));
  expect(list).toBeDefined();
  expect(list!.method).toBe("POST");
  expect(list!.status).toBe(200);
  expect(list!.headers["authorization"]).toMatch(/^Bearer qk_/);
  expect(list!.headers["origin"]).toBe(pageOrigin);
  // The session refreshed once, without a credential, then sent its JWT.
  const refreshes = apiRequests.filter((r) => r.url.endsWith("/quarters.v1.AuthService/RefreshToken"));
  expect(refreshes.map((r) => [r.status, r.headers["authorization"]])).toEqual([[200, undefined]]);
  const me = apiRequests.find((r) => r.url.endsWith("/quarters.v1.MemberService/GetCurrentUser"));
  expect(me?.status).toBe(200);
  expect(me?.headers["authorization"]).toMatch(/^Bearer ey/);

  // And the preflights themselves: OPTIONS, answered 204 with the
  // Authorization header allowed and a two-hour cache.
  const seen = [...preflights.values()].filter((p) => p.url.startsWith(api));
  // One per endpoint: browsers cache preflights per URL.
  expect(seen.length, allRequests.join("\n")).toBeGreaterThanOrEqual(4);
  for (const p of seen) {
    expect(p.method).toBe("OPTIONS");
    expect(p.status).toBe(204);
    expect(p.maxAge).toBe("7200");
    expect(p.allowHeaders?.toLowerCase()).toContain("content-type");
    // Sign-up, verification, sign-in and refresh are public; every other
    // call asked to send Authorization.
    if (!["/CreateTenant", "/VerifyEmail", "/SignIn", "/RefreshToken"].some((rpc) => p.url.endsWith(rpc))) {
      expect(p.allowHeaders?.toLowerCase()).toContain("authorization");
    }
  }
  await page.close();
});
