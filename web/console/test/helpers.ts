// What the console's browser tests need from the API directly: fresh
// tenants with a verified, signed-up owner, the mailbox, and the operator's
// PlatformService (to grant analytics and move rate limits).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";
import { createQuartersClient } from "../../../sdk/ts/src/index.js";

declare module "vitest" {
  export interface ProvidedContext {
    apiUrl: string;
    mailboxDir: string;
    platformKey: string;
  }
}

export const apiUrl = (): string => inject("apiUrl");
export const password = "console password 1";

/** mailedToken waits for a mail to `to` holding a token with prefix (qv_, qi_) not in seen. */
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

export function uniqueSlug(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * signUpOwner signs up a tenant whose owner (email, by default a new
 * address) has the test password; a new person (unless existing) verifies
 * the address with the mailed link. It lifts its rate limit out of the way of a browser clicking fast, and returns it with an
 * owner API key for checking the console's work through the API.
 */
export async function signUpOwner(prefix: string, email?: string, existing = false) {
  const anon = createQuartersClient({ baseUrl: apiUrl() });
  const slug = uniqueSlug(prefix);
  email ??= `owner@${slug}.example`;
  const res = await anon.tenants.createTenant({ slug, name: `Tenant ${slug}`, ownerEmail: email, ownerPassword: password });
  if (!existing) await anon.auth.verifyEmail({ token: await mailedToken(email, "qv_") });
  const tenant = res.tenant!;
  await setRate(tenant.id, 100_000, 100_000);
  return { slug, name: tenant.name, id: tenant.id, email, api: createQuartersClient({ baseUrl: apiUrl(), apiKey: res.apiKeySecret, retry: false }), apiKey: res.apiKeySecret };
}

export const platform = () => createQuartersClient({ baseUrl: apiUrl(), apiKey: inject("platformKey") }).platform;

/** setRate overrides a tenant's rate limit. */
export async function setRate(tenantId: string, requestsPerMinute: number, burst: number) {
  await platform().setOverrides({
    tenantId,
    overrides: { requestsPerMinute: BigInt(requestsPerMinute), burst: BigInt(burst) },
    updateMask: { paths: ["requests_per_minute", "burst"] },
  });
}

/** grantAnalytics turns on the analytics feature for a tenant on the free plan. */
export async function grantAnalytics(tenantId: string) {
  await platform().setOverrides({ tenantId, overrides: { features: { analytics: true } }, updateMask: { paths: ["features"] } });
}
