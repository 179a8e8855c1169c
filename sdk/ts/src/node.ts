// @quarters/sdk/node: a transport on Node's own http/http2 stack
// (@connectrpc/connect-node), for servers and scripts. Kept out of the main
// entry so that browser and React Native bundles never import Node code.
//
//   import { createQuartersClient } from "@quarters/sdk";
//   import { createNodeTransport } from "@quarters/sdk/node";
//   const q = createQuartersClient({ baseUrl, apiKey, transport: createNodeTransport({ baseUrl }) });
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

export interface NodeTransportOptions {
  /** The API's URL; the same as createQuartersClient's baseUrl. */
  baseUrl: string;
  /** "connect" (default, HTTP/1.1 or h2) or "grpc" (needs HTTP/2: h2c for http:// URLs). */
  protocol?: "connect" | "grpc";
  /** HTTP version for the Connect protocol: "1.1" (default) or "2". */
  httpVersion?: "1.1" | "2";
  /** Binary Protobuf instead of JSON (Connect protocol only; gRPC is always binary). */
  useBinaryFormat?: boolean;
}

/** createNodeTransport returns a Connect or gRPC transport over Node's http/http2 modules. */
export function createNodeTransport(opts: NodeTransportOptions): Transport {
  const baseUrl = opts.baseUrl.replace(/\/+$/, "");
  if (opts.protocol === "grpc") {
    return createGrpcTransport({ baseUrl });
  }
  return createConnectTransport({
    baseUrl,
    httpVersion: opts.httpVersion ?? "1.1",
    useBinaryFormat: opts.useBinaryFormat ?? false,
  });
}
