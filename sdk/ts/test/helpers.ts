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
