import { describe, expect, inject, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  CreateTenantRequestSchema,
  createQuartersClient,
  featureNotAvailable,
  isNotFound,
  quotaExceeded,
  rateLimited,
  tenantDeletionPending,
  tenantMismatch,
  validate,
  violations,
} from "../src/index.js";
import { createNodeTransport } from "../src/node.js";
import { apiUrl, signUp, uniqueSlug } from "./helpers.js";

describe("sign-up and tenant data", () => {
  it("works over the fetch transport", async () => {
    const { apiKey, slug } = await signUp();
    expect(apiKey).toMatch(/^qk_/);
    const q = createQuartersClient({ baseUrl: apiUrl(), apiKey });
    const { tenant } = await q.tenants.getTenant({});
    expect(tenant?.slug).toBe(slug);
    expect(tenant?.plan).toBe("free");

    const { project } = await q.projects.createProject({ name: "Launch plan" });
    expect(project?.id).toBeTruthy();
    const { document } = await q.documents.createDocument({ projectId: project!.id, title: "Kickoff", content: "Ship it." });
    expect(document?.title).toBe("Kickoff");
    const list = await q.documents.listDocuments({ pageSize: 10 });
    expect(list.documents.map((d) => d.title)).toEqual(["Kickoff"]);
    const projects = await q.projects.listProjects({});
    expect(projects.projects.map((p) => p.id)).toEqual([project!.id]);
  });

  it("works over the node transport, with getToken", async () => {
    const baseUrl = apiUrl();
    const transport = createNodeTransport({ baseUrl });
    const anon = createQuartersClient({ baseUrl, transport });
    const slug = uniqueSlug("n");
    const signup = await anon.tenants.createTenant({ slug, name: "Node", ownerEmail: `ceo@${slug}.example` });
    let asked = 0;
    const q = createQuartersClient({
      baseUrl,
      transport,
      getToken: async () => {
        asked++;
        return signup.apiKeySecret;
      },
    });
    const { project } = await q.projects.createProject({ name: "Via node" });
    await q.documents.createDocument({ projectId: project!.id, title: "Node doc", content: "" });
    const list = await q.documents.listDocuments({ projectId: project!.id });
    expect(list.documents.map((d) => d.title)).toEqual(["Node doc"]);
    expect(asked).toBe(3);
  });
});

describe("error helpers", () => {
  it("isNotFound for another tenant's id", async () => {
    const a = await signUp();
    const b = await signUp();
    const qa = createQuartersClient({ baseUrl: apiUrl(), apiKey: a.apiKey });
    const qb = createQuartersClient({ baseUrl: apiUrl(), apiKey: b.apiKey });
    const { project } = await qa.projects.createProject({ name: "Secret" });
    const err = await qb.projects.getProject({ id: project!.id }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(isNotFound(err)).toBe(true);
    expect(isNotFound(new Error("x"))).toBe(false);
    expect(tenantMismatch(err)).toBe(false);
  });

  it("violations on a bad sign-up", async () => {
    const anon = createQuartersClient({ baseUrl: apiUrl() });
    const err = await anon.tenants.createTenant({ slug: "WWW", name: "", ownerEmail: "nope" }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
    const fields = violations(err).map((v) => v.field);
    expect(fields).toEqual(expect.arrayContaining(["slug", "owner_email"]));
    for (const v of violations(err)) expect(v.message).toBeTruthy();
    expect(violations(new Error("not connect"))).toEqual([]);
  });

  it("tenantMismatch when the tenant option names another tenant", async () => {
    const a = await signUp();
    const b = await signUp();
    const q = createQuartersClient({ baseUrl: apiUrl(), apiKey: b.apiKey, tenant: a.slug });
    const err = await q.tenants.getTenant({}).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.PermissionDenied);
    expect(tenantMismatch(err)).toBe(true);
    expect(featureNotAvailable(err)).toBeUndefined();
    // The matching selector is fine.
    const ok = createQuartersClient({ baseUrl: apiUrl(), apiKey: b.apiKey, tenant: b.slug });
    expect((await ok.tenants.getTenant({})).tenant?.slug).toBe(b.slug);
  });

  it("tenantDeletionPending while the tenant's deletion is pending", async () => {
    const a = await signUp();
    const q = createQuartersClient({ baseUrl: apiUrl(), apiKey: a.apiKey });
    const { tenant } = await q.tenants.getTenant({});
    const operator = createQuartersClient({ baseUrl: apiUrl(), apiKey: inject("platformKey") });
    const deleted = await operator.platform.deleteTenant({ tenantId: tenant!.id });
    const purge = deleted.details?.tenant?.purgeTime;
    expect(purge).toBeDefined();
    const err = await q.projects.listProjects({}).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.PermissionDenied);
    const at = tenantDeletionPending(err);
    expect(at).toBeInstanceOf(Date);
    expect(at!.getTime()).toBe(Math.floor(Number(purge!.seconds)) * 1000);
    expect(tenantDeletionPending(new Error("x"))).toBeUndefined();
    // GetTenant is one of the RPCs a tenant awaiting deletion may call.
    expect((await q.tenants.getTenant({})).tenant?.purgeTime).toBeDefined();
    await operator.platform.cancelTenantDeletion({ tenantId: tenant!.id });
    expect((await q.projects.listProjects({})).projects).toEqual([]);
  });

  it("featureNotAvailable for analytics on the free plan", async () => {
    const { apiKey } = await signUp();
    const q = createQuartersClient({ baseUrl: apiUrl(), apiKey });
    const err = await q.analytics.getUsage({}).catch((e: unknown) => e);
    const f = featureNotAvailable(err);
    expect(f).toBeDefined();
    expect(f!.feature).toBe("analytics");
    expect(f!.plan).toBe("free");
    expect(f!.upgradeUrl).toBeTruthy();
    expect(quotaExceeded(err)).toBeUndefined();
    expect(rateLimited(err)).toBeUndefined();
  });

  it("quotaExceeded past max_projects", async () => {
    const { apiKey } = await signUp();
    const q = createQuartersClient({ baseUrl: apiUrl(), apiKey });
    let err: unknown;
    for (let i = 0; i < 6 && !err; i++) {
      err = await q.projects.createProject({ name: `p${i}` }).then(() => undefined, (e: unknown) => e);
    }
    expect(quotaExceeded(err)).toEqual({ quotaId: "max_projects", limit: 5 });
    expect(rateLimited(err)).toBeUndefined();
  });
});

describe("rate limits", () => {
  it("rateLimited reports the wait when retries are off", async () => {
    const { apiKey } = await signUp();
    const q = createQuartersClient({ baseUrl: apiUrl(), apiKey, retry: false });
    const results = await Promise.allSettled(Array.from({ length: 25 }, () => q.projects.listProjects({})));
    const errors = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason);
    expect(errors.length).toBeGreaterThan(0);
    const rl = rateLimited(errors[0]);
    expect(rl).toBeDefined();
    expect(rl!.retryAfterMs).toBeGreaterThan(0);
    expect(ConnectError.from(errors[0]).code).toBe(Code.ResourceExhausted);
    expect(quotaExceeded(errors[0])).toBeUndefined();
  });

  it("the client waits the advertised delay and retries", async () => {
    const { apiKey } = await signUp();
    const baseUrl = apiUrl();
    // Spend the burst.
    const noRetry = createQuartersClient({ baseUrl, apiKey, retry: false });
    let advertised: number | undefined;
    for (let i = 0; i < 40 && advertised === undefined; i++) {
      const err = await noRetry.projects.listProjects({}).then(() => undefined, (e: unknown) => e);
      advertised = rateLimited(err)?.retryAfterMs;
    }
    expect(advertised).toBeGreaterThan(0);

    let calls = 0;
    const countingFetch: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const q = createQuartersClient({ baseUrl, apiKey, fetch: countingFetch, retry: { maxAttempts: 3, maxBackoffMs: 5000 } });
    const start = performance.now();
    const res = await q.projects.listProjects({});
    const elapsed = performance.now() - start;
    expect(res.projects).toEqual([]);
    expect(calls).toBe(2);
    // It waited (about) what the server asked for, not an arbitrary backoff.
    expect(elapsed).toBeGreaterThanOrEqual(advertised! * 0.5);
    expect(elapsed).toBeLessThan(advertised! + 3000);
  });

  it("gives up at once when the advertised wait exceeds maxBackoffMs", async () => {
    const { apiKey } = await signUp();
    const baseUrl = apiUrl();
    const noRetry = createQuartersClient({ baseUrl, apiKey, retry: false });
    for (let i = 0; i < 40; i++) {
      const err = await noRetry.projects.listProjects({}).then(() => undefined, (e: unknown) => e);
      if (rateLimited(err)) break;
    }
    let calls = 0;
    const q = createQuartersClient({
      baseUrl,
      apiKey,
      fetch: (i, init) => (calls++, fetch(i, init)),
      retry: { maxAttempts: 3, maxBackoffMs: 1 },
    });
    const err = await q.projects.listProjects({}).catch((e: unknown) => e);
    expect(rateLimited(err)).toBeDefined();
    expect(calls).toBe(1);
  });

  it("an aborted signal stops the wait", async () => {
    const { apiKey } = await signUp();
    const baseUrl = apiUrl();
    const noRetry = createQuartersClient({ baseUrl, apiKey, retry: false });
    for (let i = 0; i < 40; i++) {
      const err = await noRetry.projects.listProjects({}).then(() => undefined, (e: unknown) => e);
      if (rateLimited(err)) break;
    }
    const q = createQuartersClient({ baseUrl, apiKey });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const start = performance.now();
    const err = await q.projects.listProjects({}, { signal: ac.signal }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Canceled);
    expect(performance.now() - start).toBeLessThan(400);
  });
});

describe("validate", () => {
  it("rejects a bad CreateTenantRequest locally", () => {
    const bad = create(CreateTenantRequestSchema, { slug: "WWW", name: "", ownerEmail: "nope" });
    const vs = validate(bad);
    expect(vs.map((v) => v.field)).toEqual(expect.arrayContaining(["slug", "name", "owner_email"]));
    const good = create(CreateTenantRequestSchema, { slug: "acme-co", name: "Acme", ownerEmail: "ceo@acme.example" });
    expect(validate(good)).toEqual([]);
  });
});
