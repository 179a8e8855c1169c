// @quarters/sdk: typed Connect clients for every Quarters service, with
// credentials, tenant selection, retries and error helpers. Runs wherever
// fetch does (browsers, React Native/Expo, Node ≥ 18, Deno, Bun); for
// Node's http/http2 stack, see "@quarters/sdk/node".
import {
  createClient,
  createContextValues,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AnalyticsService } from "./gen/quarters/v1/analytics_pb.js";
import { AuthService } from "./gen/quarters/v1/auth_pb.js";
import { DocumentService } from "./gen/quarters/v1/document_pb.js";
import { PlanService } from "./gen/quarters/v1/plan_pb.js";
import { PlatformService } from "./gen/quarters/v1/platform_pb.js";
import { ProjectService } from "./gen/quarters/v1/project_pb.js";
import { TenantService } from "./gen/quarters/v1/tenant_pb.js";
import { retryInterceptor, withRetryDefaults, type RetryPolicy } from "./retry.js";

export * from "./errors.js";
export { validate, registry } from "./validate.js";
export { defaultRetryPolicy, retryInterceptor, retryDelay, type RetryPolicy } from "./retry.js";
export { Code, ConnectError, type Transport, type Interceptor, type CallOptions } from "@connectrpc/connect";
export { create, toJson, fromJson } from "@bufbuild/protobuf";
export * from "./gen/quarters/v1/options_pb.js";
export * from "./gen/quarters/v1/tenant_pb.js";
export * from "./gen/quarters/v1/project_pb.js";
export * from "./gen/quarters/v1/document_pb.js";
export * from "./gen/quarters/v1/plan_pb.js";
export * from "./gen/quarters/v1/analytics_pb.js";
export * from "./gen/quarters/v1/auth_pb.js";
export * from "./gen/quarters/v1/platform_pb.js";

export interface QuartersClientOptions {
  /** The API's URL, e.g. "https://api.quarters.dev" or "http://localhost:8080". */
  baseUrl: string;
  /** An API key (qk_…), sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Called before every call for a bearer token (e.g. a session's JWT); wins over nothing, loses to apiKey. */
  getToken?: () => string | undefined | null | Promise<string | undefined | null>;
  /** Tenant id or slug sent as X-Tenant-ID; it only selects and must agree with the credential. */
  tenant?: string;
  /**
   * "fetch" (default): the Connect protocol over fetch (@connectrpc/connect-web).
   * Or any Transport, e.g. createNodeTransport() from "@quarters/sdk/node";
   * the SDK's interceptors are applied to it.
   */
  transport?: "fetch" | Transport;
  /** Retry policy (see RetryPolicy; defaults to defaultRetryPolicy), or false for none. */
  retry?: Partial<RetryPolicy> | false;
  /** fetch implementation for the "fetch" transport (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Binary Protobuf instead of JSON on the "fetch" transport. */
  useBinaryFormat?: boolean;
  /** Extra interceptors, run inside the SDK's credential and retry interceptors. */
  interceptors?: Interceptor[];
}

export interface QuartersClient {
  tenants: Client<typeof TenantService>;
  projects: Client<typeof ProjectService>;
  documents: Client<typeof DocumentService>;
  plans: Client<typeof PlanService>;
  analytics: Client<typeof AnalyticsService>;
  /** API key management (admins). */
  auth: Client<typeof AuthService>;
  platform: Client<typeof PlatformService>;
  /** The transport every client uses, interceptors included. */
  transport: Transport;
}

/** An interceptor that sets Authorization (from apiKey or getToken) and X-Tenant-ID. */
export function credentialInterceptor(opts: Pick<QuartersClientOptions, "apiKey" | "getToken" | "tenant">): Interceptor {
  return (next) => async (req) => {
    if (!req.header.has("Authorization")) {
      const token = opts.apiKey ?? (opts.getToken ? await opts.getToken() : undefined);
      if (token) req.header.set("Authorization", `Bearer ${token}`);
    }
    if (opts.tenant && !req.header.has("X-Tenant-ID")) req.header.set("X-Tenant-ID", opts.tenant);
    return next(req);
  };
}

/** createQuartersClient returns typed clients of every service sharing one transport. */
export function createQuartersClient(options: QuartersClientOptions): QuartersClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const interceptors: Interceptor[] = [credentialInterceptor(options)];
  if (options.retry !== false) interceptors.push(retryInterceptor(withRetryDefaults(options.retry)));
  interceptors.push(...(options.interceptors ?? []));

  let transport: Transport;
  if (options.transport === undefined || options.transport === "fetch") {
    transport = createConnectTransport({
      baseUrl,
      interceptors,
      fetch: options.fetch,
      useBinaryFormat: options.useBinaryFormat ?? false,
    });
  } else {
    transport = withInterceptors(options.transport, interceptors, baseUrl);
  }
  return {
    tenants: createClient(TenantService, transport),
    projects: createClient(ProjectService, transport),
    documents: createClient(DocumentService, transport),
    plans: createClient(PlanService, transport),
    analytics: createClient(AnalyticsService, transport),
    auth: createClient(AuthService, transport),
    platform: createClient(PlatformService, transport),
    transport,
  };
}

/**
 * withInterceptors runs interceptors around every call of an existing
 * transport (whose own interceptors, if any, run inside them).
 */
export function withInterceptors(inner: Transport, interceptors: Interceptor[], baseUrl = ""): Transport {
  const url = (m: { parent: { typeName: string }; name: string }) => `${baseUrl}/${m.parent.typeName}/${m.name}`;
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      return runUnaryCall({
        interceptors,
        signal,
        timeoutMs,
        req: {
          stream: false,
          service: method.parent,
          method,
          requestMethod: "POST",
          url: url(method),
          header: new Headers(header),
          contextValues: contextValues ?? createContextValues(),
          message: input,
        },
        next: (req) => inner.unary(req.method, req.signal, timeoutMs, req.header, req.message, req.contextValues),
      });
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return runStreamingCall({
        interceptors,
        signal,
        timeoutMs,
        req: {
          stream: true,
          service: method.parent,
          method,
          requestMethod: "POST",
          url: url(method),
          header: new Headers(header),
          contextValues: contextValues ?? createContextValues(),
          message: input,
        },
        next: (req) => inner.stream(req.method, req.signal, timeoutMs, req.header, req.message, req.contextValues),
      });
    },
  };
}
