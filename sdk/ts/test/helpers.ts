import { inject } from "vitest";
import { createQuartersClient, type QuartersClientOptions } from "../src/index.js";

export const apiUrl = (): string => inject("apiUrl");

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
 * has ownerPassword and is signed in: the session createTenant returns.
 */
export async function signUpOwner(email?: string) {
  const anon = createQuartersClient({ baseUrl: apiUrl() });
  const slug = uniqueSlug("s");
  email ??= `owner@${slug}.example`;
  const res = await anon.tenants.createTenant({ slug, name: `Tenant ${slug}`, ownerEmail: email, ownerPassword });
  return { slug, email, id: res.tenant!.id, session: res.session! };
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
