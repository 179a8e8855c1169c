import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";
import { createQuartersClient, signIn, type QuartersClientOptions } from "../src/index.js";

export const apiUrl = (): string => inject("apiUrl");

/**
 * Waits for the next mail to `to` (lowercased in file names) whose token
 * has the prefix (qv_, qp_, qi_) and that `seen` does not hold yet, and
 * returns the token. The server's worker delivers mails to files in the
 * development mailbox within a second or so of the call that caused them.
 */
export async function mailedToken(to: string, prefix: string, seen = new Set<string>()): Promise<string> {
  const dir = inject("mailboxDir");
  const suffix = `-${to.toLowerCase()}.eml`;
  const pattern = new RegExp(`\\b${prefix}[a-z2-7]{39}\\b`);
  for (let i = 0; i < 300; i++) {
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith(suffix)).sort();
    } catch {
      // not created yet
    }
    for (const n of names) {
      const token = pattern.exec(readFileSync(join(dir, n), "utf8"))?.[0];
      if (token && !seen.has(token)) {
        seen.add(token);
        return token;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail with a ${prefix} token to ${to} in ${dir}`);
}

export function uniqueSlug(prefix = "t"): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Signs up a fresh tenant (its own rate-limit allowance) and returns its slug and key. */
export async function signUp(opts: Partial<QuartersClientOptions> = {}) {
  const anon = createQuartersClient({ baseUrl: apiUrl(), ...opts });
  const slug = uniqueSlug();
  const res = await anon.tenants.createTenant({ slug, name: `Tenant ${slug}`, ownerEmail: `owner@${slug}.example` });
  return { slug, apiKey: res.apiKeySecret, tenant: res.tenant! };
}

export const ownerPassword = "correct horse battery";

/**
 * Signs up a fresh tenant whose owner (email, a new person unless given)
 * has ownerPassword, verifies a new owner's email with the mailed link, and
 * signs the owner in.
 */
export async function signUpOwner(email?: string) {
  const anon = createQuartersClient({ baseUrl: apiUrl() });
  const slug = uniqueSlug("s");
  const existing = email !== undefined;
  email ??= `owner@${slug}.example`;
  const res = await anon.tenants.createTenant({ slug, name: `Tenant ${slug}`, ownerEmail: email, ownerPassword });
  if (!existing) await anon.auth.verifyEmail({ token: await mailedToken(email, "qv_") });
  const session = await signIn({ baseUrl: apiUrl(), email, password: ownerPassword, tenant: slug });
  return { slug, email, id: res.tenant!.id, session };
}

/** A fetch that counts the calls to each procedure (URL path). */
export function countingFetch() {
  const counts = new Map<string, number>();
  const f: typeof fetch = (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const path = new URL(url).pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    return fetch(input, init);
  };
  return {
    fetch: f,
    count: (path: string) => counts.get(path) ?? 0,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
  };
}

export const refreshPath = "/quarters.v1.AuthService/RefreshToken";
