// The retry policy, mirroring the Go SDK's (sdk/go/retry.go).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { rateLimited } from "./errors.js";

/**
 * How a client retries failed unary calls:
 *
 * - RESOURCE_EXHAUSTED from the rate limiter (a RetryInfo detail or a
 *   Retry-After header, and no QuotaFailure), for every method: the server
 *   refuses before the handler runs, so repeating is safe even for creates.
 *   The client waits exactly the advertised delay; if that is longer than
 *   maxBackoffMs the error is returned at once (rateLimited(err) says how long).
 * - UNAVAILABLE, with exponential backoff and jitter, only for methods
 *   without side effects (idempotency_level = NO_SIDE_EFFECTS: Get*, List*).
 *
 * Nothing else is retried (quota failures stay exhausted). Aborting the
 * call's signal stops the wait at once.
 */
export interface RetryPolicy {
  /** Most times one call is sent, the first included; 1 disables retries. */
  maxAttempts: number;
  /** Wait before the first retry after UNAVAILABLE; doubled per retry. */
  initialBackoffMs: number;
  /** Cap on any wait; a rate-limit refusal asking for longer is returned instead. */
  maxBackoffMs: number;
}

/** 3 attempts, 100 ms then 200 ms (±50% jitter) after UNAVAILABLE, rate-limit waits up to 5 s. */
export const defaultRetryPolicy: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 3,
  initialBackoffMs: 100,
  maxBackoffMs: 5000,
});

export function withRetryDefaults(p: Partial<RetryPolicy> | undefined): RetryPolicy {
  const d = defaultRetryPolicy;
  return {
    maxAttempts: p?.maxAttempts && p.maxAttempts > 0 ? p.maxAttempts : d.maxAttempts,
    initialBackoffMs: p?.initialBackoffMs && p.initialBackoffMs > 0 ? p.initialBackoffMs : d.initialBackoffMs,
    maxBackoffMs: p?.maxBackoffMs && p.maxBackoffMs > 0 ? p.maxBackoffMs : d.maxBackoffMs,
  };
}

/** The retry delay for err after `attempt` (1 = first), or undefined to give up. */
export function retryDelay(
  policy: RetryPolicy,
  err: unknown,
  attempt: number,
  idempotent: boolean,
  jitter: () => number = Math.random,
): number | undefined {
  const cerr = ConnectError.from(err);
  switch (cerr.code) {
    case Code.ResourceExhausted: {
      const rl = rateLimited(cerr);
      return rl && rl.retryAfterMs <= policy.maxBackoffMs ? rl.retryAfterMs : undefined;
    }
    case Code.Unavailable: {
      if (!idempotent) return undefined;
      let d = policy.initialBackoffMs;
      for (let i = 1; i < attempt && d < policy.maxBackoffMs; i++) d *= 2;
      d = Math.min(d, policy.maxBackoffMs);
      return d * (0.5 + jitter() / 2);
    }
  }
  return undefined;
}

/** An interceptor applying policy to unary calls; streams pass through. */
export function retryInterceptor(policy: RetryPolicy): Interceptor {
  return (next) => async (req) => {
    if (req.stream || policy.maxAttempts <= 1) return next(req);
    const idempotent =
      req.method.methodKind === "unary" && req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        if (attempt >= policy.maxAttempts || req.signal.aborted) throw err;
        const wait = retryDelay(policy, err, attempt, idempotent);
        if (wait === undefined) throw err;
        await sleep(wait, req.signal, err);
      }
    }
  };
}

function sleep(ms: number, signal: AbortSignal, cause: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(
        new ConnectError(
          `canceled while waiting ${Math.round(ms)} ms to retry after: ${ConnectError.from(cause).message}`,
          Code.Canceled,
          undefined,
          undefined,
          signal.reason ?? cause,
        ),
      );
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}
