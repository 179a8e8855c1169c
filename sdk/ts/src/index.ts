// @quarters/sdk: typed Connect clients for every Quarters service, with
// credentials, tenant selection, retries and error helpers. Runs wherever
// fetch does (browsers, React Native/Expo, Node ≥ 18, Deno, Bun); for
// Node's http/http2 stack, see "@quarters/sdk/node".
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { isUnauthenticated } from "./errors.js";
import { AnalyticsService } from "./gen/quarters/v1/analytics_pb.js";
import { AuthService } from "./gen/quarters/v1/auth_pb.js";
import { DocumentService } from "./gen/quarters/v1/document_pb.js";
import { MemberService } from "./gen/quarters/v1/member_pb.js";
import { PlanService } from "./gen/quarters/v1/plan_pb.js";
import { PlatformService } from "./gen/quarters/v1/platform_pb.js";
import { ProjectService } from "./gen/quarters/v1/project_pb.js";
import { TenantService } from "./gen/quarters/v1/tenant_pb.js";
import { WebhookService } from "./gen/quarters/v1/webhook_pb.js";
import { retryInterceptor, withRetryDefaults, type RetryPolicy } from "./retry.js";
import { tokenRefused, type QuartersSession } from "./session.js";
import { buildTransport, type ConnectionOptions } from "./transport.js";

export * from "./errors.js";
export { validate, registry } from "./validate.js";
export { defaultRetryPolicy, retryInterceptor, retryDelay, type RetryPolicy } from "./retry.js";
export {
  createSession,
  signIn,
  isSessionEnded,
  DEFAULT_REFRESH_BEFORE_MS,
  type QuartersSession,
  type SessionOptions,
  type SignInOptions,
} from "./session.js";
export { withInterceptors, type ConnectionOptions } from "./transport.js";
export { Code, ConnectError, type Transport, type Interceptor, type CallOptions } from "@connectrpc/connect";
export { create, toJson, fromJson } from "@bufbuild/protobuf";
export * from "./gen/quarters/v1/options_pb.js";
export * from "./gen/quarters/v1/errors_pb.js";
export * from "./gen/quarters/v1/tenant_pb.js";
export * from "./gen/quarters/v1/project_pb.js";
export * from "./gen/quarters/v1/document_pb.js";
export * from "./gen/quarters/v1/plan_pb.js";
export * from "./gen/quarters/v1/analytics_pb.js";
export * from "./gen/quarters/v1/auth_pb.js";
export * from "./gen/quarters/v1/session_pb.js";
export * from "./gen/quarters/v1/member_pb.js";
export * from "./gen/quarters/v1/platform_pb.js";

export interface QuartersClientOptions extends ConnectionOptions {
  /** An API key (qk_…), sent as `Authorization: Bearer <key>`. Wins over session and getToken. */
  apiKey?: string;
  /**
   * A signed-in person's session (createSession): every call sends its
   * access token, refreshed before it expires; and when the API refuses a
   * token the session believed valid (e.g. the person's role changed), the
   * session is refreshed (once for all the calls refused) and a unary call
   * sent again, once. Wins over getToken.
   */
  session?: QuartersSession;
  /** Called before every call for a bearer token (e.g. a session's JWT); used when there is neither apiKey nor session. */
  getToken?: () => string | undefined | null | Promise<string | undefined | null>;
  /** Tenant id or slug sent as X-Tenant-ID; it only selects and must agree with the credential. */
  tenant?: string;
  /** Retry policy (see RetryPolicy; defaults to defaultRetryPolicy), or false for none. */
  retry?: Partial<RetryPolicy> | false;
  /** Extra interceptors, run inside the SDK's credential and retry interceptors. */
  interceptors?: Interceptor[];
}

export interface QuartersClient {
  tenants: Client<typeof TenantService>;
  projects: Client<typeof ProjectService>;
  documents: Client<typeof DocumentService>;
  plans: Client<typeof PlanService>;
  analytics: Client<typeof AnalyticsService>;
  /** Webhook endpoints, signing secrets and deliveries (admins; feature custom_webhooks). */
  webhooks: Client<typeof WebhookService>;
  /** Sign-in and sessions (see signIn and createSession, which call it for you), and API keys (admins). */
  auth: Client<typeof AuthService>;
  /** Invitations, members and roles; getCurrentUser. acceptInvitation needs no credential. */
  members: Client<typeof MemberService>;
  platform: Client<typeof PlatformService>;
  /** The transport every client uses, interceptors included. */
  transport: Transport;
}

/**
 * An interceptor that sets Authorization (from apiKey, session or
 * getToken) and X-Tenant-ID, and with a session, refreshes a refused token
 * and sends a unary call again, once.
 */
export function credentialInterceptor(
  opts: Pick<QuartersClientOptions, "apiKey" | "session" | "getToken" | "tenant">,
): Interceptor {
  const token = async () => {
    if (opts.apiKey !== undefined) return opts.apiKey;
    if (opts.session) return opts.session.getToken();
    return (await opts.getToken?.()) ?? undefined;
  };
  return (next) => async (req) => {
    if (opts.tenant && !req.header.has("X-Tenant-ID")) req.header.set("X-Tenant-ID", opts.tenant);
    if (req.header.has("Authorization")) return next(req);
    const sent = await token();
    if (sent) req.header.set("Authorization", `Bearer ${sent}`);
    const session = opts.apiKey === undefined ? opts.session : undefined;
    if (!session || !sent || req.stream) return next(req);
    try {
      return await next(req);
    } catch (err) {
      if (!isUnauthenticated(err)) throw err;
      await tokenRefused(session, sent);
      req.header.set("Authorization", `Bearer ${await session.getToken()}`);
      return next(req);
    }
  };
}

/** createQuartersClient returns typed clients of every service sharing one transport. */
export function createQuartersClient(options: QuartersClientOptions): QuartersClient {
  const interceptors: Interceptor[] = [credentialInterceptor(options)];
  if (options.retry !== false) interceptors.push(retryInterceptor(withRetryDefaults(options.retry)));
  interceptors.push(...(options.interceptors ?? []));
  const transport = buildTransport(options, interceptors);
  return {
    tenants: createClient(TenantService, transport),
    projects: createClient(ProjectService, transport),
    documents: createClient(DocumentService, transport),
    plans: createClient(PlanService, transport),
    analytics: createClient(AnalyticsService, transport),
    auth: createClient(AuthService, transport),
    members: createClient(MemberService, transport),
    platform: createClient(PlatformService, transport),
    webhooks: createClient(WebhookService, transport),
    transport,
  };
}
