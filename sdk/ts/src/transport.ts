// The transport every client of the SDK uses: the fetch-based Connect
// transport or a caller's own, with the SDK's interceptors around it.
import { createContextValues, type Interceptor, type Transport } from "@connectrpc/connect";
import { runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import { createConnectTransport } from "@connectrpc/connect-web";

/** How to reach the API: what createQuartersClient, createSession and signIn share. */
export interface ConnectionOptions {
  /** The API's URL, e.g. "https://api.quarters.dev" or "http://localhost:8080". */
  baseUrl: string;
  /**
   * "fetch" (default): the Connect protocol over fetch (@connectrpc/connect-web).
   * Or any Transport, e.g. createNodeTransport() from "@quarters/sdk/node";
   * the SDK's interceptors are applied to it.
   */
  transport?: "fetch" | Transport;
  /** fetch implementation for the "fetch" transport (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Binary Protobuf instead of JSON on the "fetch" transport. */
  useBinaryFormat?: boolean;
}

/** buildTransport returns the transport of options with interceptors around every call. */
export function buildTransport(options: ConnectionOptions, interceptors: Interceptor[]): Transport {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  if (options.transport === undefined || options.transport === "fetch") {
    return createConnectTransport({
      baseUrl,
      interceptors,
      fetch: options.fetch,
      useBinaryFormat: options.useBinaryFormat ?? false,
    });
  }
  return withInterceptors(options.transport, interceptors, baseUrl);
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
