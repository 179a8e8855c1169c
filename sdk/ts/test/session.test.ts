// Sessions against the live server: signIn, createSession's single-flight
// refresh, a refused token refreshed once, switchTenant and signOut.
import { describe, expect, it } from "vitest";
import { clone } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  Role,
  SessionSchema,
  createQuartersClient,
  createSession,
  emailNotVerified,
  fromJson,
  isNotFound,
  isSessionEnded,
  isUnauthenticated,
  signIn,
  toJson,
  type Session,
} from "../src/index.js";
import { createNodeTransport } from "../src/node.js";
import { apiUrl, countingFetch, mailedToken, ownerPassword, refreshPath, signUpOwner, uniqueSlug } from "./helpers.js";

/** A copy of s whose access token seems to expire at ms (the server still accepts it: only the session is fooled). */
function expiring(s: Session, ms: number): Session {
  const c = clone(SessionSchema, s);
  c.accessTokenExpireTime = timestampFromMs(ms);
  return c;
}

describe("signIn", () => {
  it("returns a session whose token authenticates calls", async () => {
    const o = await signUpOwner();
    expect(o.session.refreshToken).toMatch(/^qr_/);
    const baseUrl = apiUrl();
    const session = await signIn({ baseUrl, email: o.email, password: ownerPassword, tenant: o.slug });
    expect(session.tenantId).toBe(o.id);
    expect(session.role).toBe(Role.OWNER);
    expect(session.user?.email).toBe(o.email);
    expect(session.refreshToken).not.toBe(o.session.refreshToken);
    expect(timestampMs(session.accessTokenExpireTime!)).toBeGreaterThan(Date.now() + 14 * 60_000);

    // By X-Tenant-ID instead, over Node's HTTP stack.
    const byHeader = await signIn({
      baseUrl,
      transport: createNodeTransport({ baseUrl }),
      email: o.email,
      password: ownerPassword,
      headers: { "X-Tenant-ID": o.id },
    });
    expect(byHeader.tenantSlug).toBe(o.slug);

    const wrong = await signIn({ baseUrl, email: o.email, password: "wrong password", tenant: o.slug }).catch((e: unknown) => e);
    expect(isUnauthenticated(wrong)).toBe(true);

    const counter = countingFetch();
    const s = createSession({ baseUrl, session, fetch: counter.fetch });
    const q = createQuartersClient({ baseUrl, session: s, fetch: counter.fetch });
    const me = await q.members.getCurrentUser({});
    expect(me.user?.email).toBe(o.email);
    expect(me.tenantId).toBe(o.id);
    expect(me.role).toBe(Role.OWNER);
    const { members } = await q.members.listMembers({});
    expect(members.map((m) => m.user?.email)).toEqual([o.email]);
    // getToken serves as well.
    const viaGetToken = createQuartersClient({ baseUrl, getToken: s.getToken });
    expect((await viaGetToken.tenants.getTenant({})).tenant?.id).toBe(o.id);
    // A fresh token is not refreshed.
    expect(counter.count(refreshPath)).toBe(0);
    expect(s.session.accessToken).toBe(session.accessToken);
  });
});

describe("createSession", () => {
  it("shares one refresh among 20 concurrent calls and keeps the session alive", async () => {
    const o = await signUpOwner();
    const baseUrl = apiUrl();
    const counter = countingFetch();
    const saved: Session[] = [];
    const s = createSession({
      baseUrl,
      session: expiring(o.session, Date.now() - 1000),
      fetch: counter.fetch,
      onRefresh: (next) => void saved.push(next),
    });
    const q = createQuartersClient({ baseUrl, session: s, fetch: counter.fetch });

    const results = await Promise.all(Array.from({ length: 20 }, () => q.members.getCurrentUser({})));
    for (const me of results) expect(me.user?.email).toBe(o.email);
    expect(counter.count(refreshPath)).toBe(1);
    expect(saved).toHaveLength(1);
    expect(saved[0]).toBe(s.session);
    expect(s.session.accessToken).not.toBe(o.session.accessToken);
    expect(s.session.refreshToken).not.toBe(o.session.refreshToken);
    expect(timestampMs(s.session.accessTokenExpireTime!)).toBeGreaterThan(Date.now() + 10 * 60_000);

    // Still good: a second session, started from the saved one as stored
    // in JSON, refreshes again.
    const stored = JSON.stringify(toJson(SessionSchema, expiring(saved[0]!, 0)));
    const again = createSession({ baseUrl, session: fromJson(SessionSchema, JSON.parse(stored)) });
    const token = await again.getToken();
    expect(token).not.toBe(s.session.accessToken);
    const me = await createQuartersClient({ baseUrl, session: again }).members.getCurrentUser({});
    expect(me.tenantId).toBe(o.id);

    // Presenting s's spent refresh token ends the whole session.
    const reused = await createSession({ baseUrl, session: expiring(s.session, 0) })
      .getToken()
      .catch((e: unknown) => e);
    expect(isSessionEnded(reused)).toBe(true);
    expect(isUnauthenticated(reused)).toBe(true);
    const revoked = await createSession({ baseUrl, session: expiring(again.session, 0) })
      .getToken()
      .catch((e: unknown) => e);
    expect(isSessionEnded(revoked)).toBe(true);
  });

  it("refreshes within refreshBeforeMs, not before", async () => {
    const o = await signUpOwner();
    const baseUrl = apiUrl();
    const cases = [
      { expireIn: 10 * 60_000, refreshBeforeMs: undefined, refreshed: false },
      { expireIn: 30_000, refreshBeforeMs: undefined, refreshed: true },
      { expireIn: 10 * 60_000, refreshBeforeMs: 11 * 60_000, refreshed: true },
      { expireIn: 30_000, refreshBeforeMs: 10_000, refreshed: false },
    ];
    for (const c of cases) {
      const session = expiring(await signIn({ baseUrl, email: o.email, password: ownerPassword, tenant: o.slug }), Date.now() + c.expireIn);
      const counter = countingFetch();
      const s = createSession({ baseUrl, session, refreshBeforeMs: c.refreshBeforeMs, fetch: counter.fetch });
      const token = await s.getToken();
      expect({ ...c, refreshed: token !== session.accessToken }).toEqual(c);
      expect(counter.count(refreshPath)).toBe(c.refreshed ? 1 : 0);
    }
  });

  it("refreshes a refused token once, then the calls succeed with the new role", async () => {
    const o = await signUpOwner();
    const baseUrl = apiUrl();
    const owner = createQuartersClient({ baseUrl, session: createSession({ baseUrl, session: o.session }) });
    const invited = await owner.members.inviteMember({ email: `ann@${o.slug}.example`, role: Role.MEMBER });
    expect(invited.token).toBe(""); // mailed to ann only
    const token = await mailedToken(`ann@${o.slug}.example`, "qi_");
    const anon = createQuartersClient({ baseUrl });
    const ann = (await anon.members.acceptInvitation({ token, password: "ann's password" })).session!;
    expect(ann.role).toBe(Role.MEMBER);

    const counter = countingFetch();
    const saved: Session[] = [];
    const s = createSession({ baseUrl, session: ann, fetch: counter.fetch, onRefresh: (next) => void saved.push(next) });
    const q = createQuartersClient({ baseUrl, session: s, fetch: counter.fetch });
    const denied = await q.members.inviteMember({ email: `bob@${o.slug}.example`, role: Role.MEMBER }).catch((e: unknown) => e);
    expect(ConnectError.from(denied).code).toBe(Code.PermissionDenied);

    await owner.members.updateMemberRole({ userId: ann.user!.id, role: Role.ADMIN });
    // The old token is refused now, though it has not expired.
    const refused = await createQuartersClient({ baseUrl, apiKey: ann.accessToken }).members.getCurrentUser({}).catch((e: unknown) => e);
    expect(isUnauthenticated(refused)).toBe(true);

    const results = await Promise.all(Array.from({ length: 10 }, () => q.members.getCurrentUser({})));
    for (const me of results) expect(me.role).toBe(Role.ADMIN);
    expect(counter.count(refreshPath)).toBe(1);
    expect(saved.map((x) => x.role)).toEqual([Role.ADMIN]);
    await q.members.inviteMember({ email: `bob@${o.slug}.example`, role: Role.MEMBER });

    // Removed: the refresh is refused too, and the session is over.
    await owner.members.removeMember({ userId: ann.user!.id });
    const gone = await q.projects.listProjects({}).catch((e: unknown) => e);
    expect(isSessionEnded(gone)).toBe(true);
    expect(isUnauthenticated(gone)).toBe(true);
    expect(counter.count(refreshPath)).toBe(2);
    const before = counter.total();
    const again = await q.projects.listProjects({}).catch((e: unknown) => e);
    expect(isSessionEnded(again)).toBe(true);
    expect(counter.total()).toBe(before);
  });

  it("rejects the waiting calls when onRefresh throws, and keeps the new session", async () => {
    const o = await signUpOwner();
    const baseUrl = apiUrl();
    const counter = countingFetch();
    const s = createSession({
      baseUrl,
      session: expiring(o.session, 0),
      fetch: counter.fetch,
      onRefresh: () => {
        throw new Error("disk full");
      },
    });
    await expect(s.getToken()).rejects.toThrow("disk full");
    expect(s.session.accessToken).not.toBe(o.session.accessToken);
    expect(await s.getToken()).toBe(s.session.accessToken);
    expect(counter.count(refreshPath)).toBe(1);
  });

  it("switchTenant moves the session to another of the person's tenants", async () => {
    const a = await signUpOwner();
    const b = await signUpOwner(a.email); // the same person owns b
    const other = await signUpOwner();
    const baseUrl = apiUrl();
    const saved: Session[] = [];
    const s = createSession({ baseUrl, session: a.session, onRefresh: (next) => void saved.push(next) });
    const q = createQuartersClient({ baseUrl, session: s });
    const me = await q.members.getCurrentUser({});
    expect(me.tenants.map((t) => t.tenantSlug).sort()).toEqual([a.slug, b.slug].sort());

    await s.switchTenant(b.slug);
    expect((await q.tenants.getTenant({})).tenant?.id).toBe(b.id);
    expect(s.session.tenantSlug).toBe(b.slug);
    expect(saved.map((x) => x.tenantId)).toEqual([b.id]);
    // The session in a was ended.
    const old = await createQuartersClient({ baseUrl }).auth.refreshToken({ refreshToken: a.session.refreshToken }).catch((e: unknown) => e);
    expect(isUnauthenticated(old)).toBe(true);

    const notMember = await s.switchTenant(other.slug).catch((e: unknown) => e);
    expect(isNotFound(notMember)).toBe(true);
    expect(s.session.tenantId).toBe(b.id);

    await s.switchTenant(a.id);
    expect((await q.tenants.getTenant({})).tenant?.id).toBe(a.id);
  });

  it("signOut ends the session", async () => {
    const o = await signUpOwner();
    const baseUrl = apiUrl();
    const counter = countingFetch();
    const s = createSession({ baseUrl, session: o.session });
    const q = createQuartersClient({ baseUrl, session: s, fetch: counter.fetch });
    await q.members.getCurrentUser({});

    await s.signOut();
    const before = counter.total();
    const err = await q.members.getCurrentUser({}).catch((e: unknown) => e);
    expect(isSessionEnded(err)).toBe(true);
    expect(isUnauthenticated(err)).toBe(true);
    expect(counter.total()).toBe(before);
    await s.signOut(); // again: nothing to do
    expect(isSessionEnded(await s.switchTenant(o.slug).catch((e: unknown) => e))).toBe(true);

    const refused = await createQuartersClient({ baseUrl }).auth.refreshToken({ refreshToken: o.session.refreshToken }).catch((e: unknown) => e);
    expect(isUnauthenticated(refused)).toBe(true);
    expect(isSessionEnded(refused)).toBe(false);
  });
  it("changes the password: this session goes on with a fresh one, the others end", async () => {
    const o = await signUpOwner();
    const baseUrl = apiUrl();
    const other = await signIn({ baseUrl, email: o.email, password: ownerPassword, tenant: o.slug });
    const saved: Session[] = [];
    const s = createSession({ baseUrl, session: o.session, onRefresh: (next) => void saved.push(next) });
    const wrong = await s.changePassword("not the password", "a changed password").catch((e: unknown) => e);
    expect(isUnauthenticated(wrong)).toBe(true);
    expect(s.session).toBe(o.session);

    await s.changePassword(ownerPassword, "a changed password");
    expect(saved).toEqual([s.session]);
    expect(s.session.refreshToken).not.toBe(o.session.refreshToken);
    const me = await createQuartersClient({ baseUrl, session: s }).members.getCurrentUser({});
    expect(me.user?.email).toBe(o.email);
    const ended = await createSession({ baseUrl, session: expiring(other, 0) }).getToken().catch((e: unknown) => e);
    expect(isSessionEnded(ended)).toBe(true);
    const old = await signIn({ baseUrl, email: o.email, password: ownerPassword, tenant: o.slug }).catch((e: unknown) => e);
    expect(isUnauthenticated(old)).toBe(true);
    await signIn({ baseUrl, email: o.email, password: "a changed password", tenant: o.slug });
  });

  it("refuses an unverified account's right password with EMAIL_NOT_VERIFIED", async () => {
    const baseUrl = apiUrl();
    const slug = uniqueSlug("u");
    const email = `owner@${slug}.example`;
    await createQuartersClient({ baseUrl }).tenants.createTenant({ slug, name: "U", ownerEmail: email, ownerPassword });
    const err = await signIn({ baseUrl, email, password: ownerPassword, tenant: slug }).catch((e: unknown) => e);
    expect(emailNotVerified(err)).toBe(true);
    const wrong = await signIn({ baseUrl, email, password: "a wrong password", tenant: slug }).catch((e: unknown) => e);
    expect(emailNotVerified(wrong)).toBe(false);
    expect(isUnauthenticated(wrong)).toBe(true);
  });
});
