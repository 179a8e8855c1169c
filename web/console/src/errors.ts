// Turns whatever a call threw into one sentence a person can act on, with
// the SDK's error helpers reading the details the API attaches.
import {
  Code,
  ConnectError,
  emailNotVerified,
  featureNotAvailable,
  isNotFound,
  isSessionEnded,
  quotaExceeded,
  rateLimited,
  tenantSuspended,
  violations,
} from "@quarters/sdk";

/** describe returns a message for err, for the console's alert line. */
export function describe(err: unknown): string {
  if (isSessionEnded(err)) return "Your session ended: sign in again.";
  const vs = violations(err);
  if (vs.length > 0) return vs.map((v) => (v.field ? `${v.field}: ${v.message}` : v.message)).join("; ");
  const quota = quotaExceeded(err);
  if (quota) return `Your plan's limit is reached (${quota.quotaId}: ${quota.limit}). Upgrade the plan or remove something first.`;
  const limited = rateLimited(err);
  if (limited) return `Too many requests: try again in ${Math.ceil(limited.retryAfterMs / 1000)} s.`;
  const feature = featureNotAvailable(err);
  if (feature) return `The ${feature.plan} plan does not include ${feature.feature}: upgrade at ${feature.upgradeUrl}.`;
  if (tenantSuspended(err)) return "This tenant is suspended: contact support.";
  if (emailNotVerified(err)) return "Your email address is not verified yet: open the link we mailed you.";
  if (isNotFound(err)) return "Not found: it may have been deleted.";
  const cerr = ConnectError.from(err);
  switch (cerr.code) {
    case Code.Unauthenticated:
      return "Wrong email, password or tenant.";
    case Code.PermissionDenied:
      return `Not allowed: ${cerr.rawMessage}`;
    case Code.Unavailable:
      return "The API is unreachable: try again shortly.";
    default:
      return cerr.rawMessage || cerr.message;
  }
}
