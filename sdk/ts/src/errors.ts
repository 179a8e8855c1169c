// Error helpers: read the codes and details Quarters puts on its errors.
// Every helper takes whatever a call threw (unknown) and returns a typed
// result, or undefined/false/[] when the error is not of that kind.
import { Code, ConnectError } from "@connectrpc/connect";
import { ViolationsSchema, type FieldPath } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { ErrorInfoSchema, QuotaFailureSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "./gen/quarters/v1/errors_pb.js";

/** The ErrorInfo domain of Quarters' errors. */
export const ERROR_DOMAIN = "quarters.dev";
/**
 * The ErrorInfo reason on the wire for r: the contract's ErrorReason value
 * name without its ERROR_REASON_ prefix, which is what protoc-gen-es names
 * the enum member.
 */
export function reasonOf(r: ErrorReason): string {
  return ErrorReason[r];
}

/** ErrorInfo reasons Quarters sends, from the contract's ErrorReason enum. */
export const Reason = {
  TenantMismatch: reasonOf(ErrorReason.TENANT_MISMATCH),
  TenantSuspended: reasonOf(ErrorReason.TENANT_SUSPENDED),
  TenantDeletionPending: reasonOf(ErrorReason.TENANT_DELETION_PENDING),
  FeatureNotAvailable: reasonOf(ErrorReason.FEATURE_NOT_AVAILABLE),
  EmailNotVerified: reasonOf(ErrorReason.EMAIL_NOT_VERIFIED),
} as const;

/** asConnectError returns err as a ConnectError if it has code `code`. */
function withCode(err: unknown, code: Code): ConnectError | undefined {
  if (err === undefined || err === null) return undefined;
  const cerr = ConnectError.from(err);
  return cerr.code === code ? cerr : undefined;
}

function errorInfo(err: unknown, code: Code, reason: string) {
  const cerr = withCode(err, code);
  if (!cerr) return undefined;
  return cerr.findDetails(ErrorInfoSchema).find((i) => i.reason === reason);
}

/** The id never existed, was deleted, or belongs to another tenant (not told apart). */
export function isNotFound(err: unknown): boolean {
  return withCode(err, Code.NotFound) !== undefined;
}

/** No credential, or a malformed, unknown, revoked or expired one. */
export function isUnauthenticated(err: unknown): boolean {
  return withCode(err, Code.Unauthenticated) !== undefined;
}

/** PERMISSION_DENIED for any reason (role, feature, tenant mismatch, suspended). */
export function isPermissionDenied(err: unknown): boolean {
  return withCode(err, Code.PermissionDenied) !== undefined;
}

/**
 * The tenant selector (the client's `tenant` option, X-Tenant-ID, or the
 * subdomain) names another tenant than the credential's.
 */
export function tenantMismatch(err: unknown): boolean {
  return errorInfo(err, Code.PermissionDenied, Reason.TenantMismatch) !== undefined;
}

/** The caller's tenant is suspended. */
export function tenantSuspended(err: unknown): boolean {
  return errorInfo(err, Code.PermissionDenied, Reason.TenantSuspended) !== undefined;
}

/**
 * The caller's tenant is awaiting deletion: returns when its data is purged
 * (the ErrorInfo's purge_time), or undefined if err is not that refusal.
 * Until then its owner may export the data and cancel the deletion.
 */
export function tenantDeletionPending(err: unknown): Date | undefined {
  const info = errorInfo(err, Code.PermissionDenied, Reason.TenantDeletionPending);
  if (info === undefined) return undefined;
  return new Date(info.metadata["purge_time"] ?? "");
}

/**
 * A sign-in refused because the account's email is not verified yet
 * (FAILED_PRECONDITION, reason EMAIL_NOT_VERIFIED; the password was right).
 * The person opens the link mailed to them; requestEmailVerification sends
 * another.
 */
export function emailNotVerified(err: unknown): boolean {
  return errorInfo(err, Code.FailedPrecondition, Reason.EmailNotVerified) !== undefined;
}

/**
 * A rate-limit refusal, and how long to wait before calling again: the
 * RetryInfo detail's delay, else the Retry-After header. A quota failure
 * is not a rate limit (waiting does not help: see quotaExceeded).
 */
export function rateLimited(err: unknown): { retryAfterMs: number } | undefined {
  const cerr = withCode(err, Code.ResourceExhausted);
  if (!cerr || cerr.findDetails(QuotaFailureSchema).length > 0) return undefined;
  for (const ri of cerr.findDetails(RetryInfoSchema)) {
    if (ri.retryDelay) {
      const ms = Number(ri.retryDelay.seconds) * 1000 + ri.retryDelay.nanos / 1e6;
      return { retryAfterMs: Math.max(0, Math.ceil(ms)) };
    }
  }
  const ms = parseRetryAfter(cerr.metadata.get("Retry-After"), Date.now());
  return ms === undefined ? undefined : { retryAfterMs: ms };
}

/** parseRetryAfter reads a Retry-After value (seconds or an HTTP date) as milliseconds from now. */
export function parseRetryAfter(v: string | null | undefined, now: number): number | undefined {
  v = v?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) {
    const s = Number(v);
    return s <= 365 * 24 * 3600 ? s * 1000 : undefined;
  }
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/**
 * The tenant's plan lacks a feature (PERMISSION_DENIED, ErrorInfo reason
 * FEATURE_NOT_AVAILABLE): which feature, the tenant's plan, where to upgrade.
 */
export function featureNotAvailable(err: unknown): { feature: string; plan: string; upgradeUrl: string } | undefined {
  const info = errorInfo(err, Code.PermissionDenied, Reason.FeatureNotAvailable);
  if (!info) return undefined;
  const m = info.metadata;
  return { feature: m["feature"] ?? "", plan: m["plan"] ?? "", upgradeUrl: m["upgrade_url"] ?? "" };
}

/**
 * A quota failure (RESOURCE_EXHAUSTED with a QuotaFailure detail): the
 * exhausted limit (e.g. "max_projects") and its value. Retrying does not help.
 */
export function quotaExceeded(err: unknown): { quotaId: string; limit: number } | undefined {
  const cerr = withCode(err, Code.ResourceExhausted);
  if (!cerr) return undefined;
  for (const qf of cerr.findDetails(QuotaFailureSchema)) {
    const v = qf.violations[0];
    if (v) return { quotaId: v.quotaId, limit: Number(v.quotaValue) };
  }
  return undefined;
}

/** One broken validation rule. */
export interface FieldViolation {
  /** Path to the field, e.g. "owner_email", "document.title"; empty for a message-level rule. */
  field: string;
  /** The rule's id, e.g. "string.email". */
  ruleId: string;
  /** What is wrong, in English. */
  message: string;
}

/** The broken rules of an INVALID_ARGUMENT error (its buf.validate.Violations detail); [] otherwise. */
export function violations(err: unknown): FieldViolation[] {
  const cerr = withCode(err, Code.InvalidArgument);
  if (!cerr) return [];
  return cerr.findDetails(ViolationsSchema).flatMap((vs) =>
    vs.violations.map((v) => ({ field: fieldPathString(v.field), ruleId: v.ruleId, message: v.message })),
  );
}

/** fieldPathString formats a buf.validate.FieldPath as `a.b[0]`, `m["k"]`. */
export function fieldPathString(path: FieldPath | undefined): string {
  let s = "";
  for (const e of path?.elements ?? []) {
    s += (s ? "." : "") + e.fieldName;
    const sub = e.subscript;
    switch (sub.case) {
      case "index":
      case "intKey":
      case "uintKey":
      case "boolKey":
        s += `[${String(sub.value)}]`;
        break;
      case "stringKey":
        s += `[${JSON.stringify(sub.value)}]`;
        break;
    }
  }
  return s;
}
