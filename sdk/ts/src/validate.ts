// Client-side validation with the protovalidate rules of the API's protos.
import { createRegistry, type DescMessage, type Message } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import type { FieldViolation } from "./errors.js";
import { file_quarters_v1_analytics } from "./gen/quarters/v1/analytics_pb.js";
import { file_quarters_v1_auth } from "./gen/quarters/v1/auth_pb.js";
import { file_quarters_v1_document } from "./gen/quarters/v1/document_pb.js";
import { file_quarters_v1_member } from "./gen/quarters/v1/member_pb.js";
import { file_quarters_v1_plan } from "./gen/quarters/v1/plan_pb.js";
import { file_quarters_v1_platform } from "./gen/quarters/v1/platform_pb.js";
import { file_quarters_v1_project } from "./gen/quarters/v1/project_pb.js";
import { file_quarters_v1_session } from "./gen/quarters/v1/session_pb.js";
import { file_quarters_v1_tenant } from "./gen/quarters/v1/tenant_pb.js";

/** Every message of the API, by type name. */
export const registry = createRegistry(
  file_quarters_v1_tenant,
  file_quarters_v1_project,
  file_quarters_v1_document,
  file_quarters_v1_plan,
  file_quarters_v1_analytics,
  file_quarters_v1_auth,
  file_quarters_v1_member,
  file_quarters_v1_session,
  file_quarters_v1_platform,
);

let validator: Validator | undefined;

/**
 * validate checks message against its protovalidate rules, locally, and
 * returns the broken ones ([] when valid) in the shape violations(err)
 * gives for the server's answer. The schema is looked up by the message's
 * $typeName among the API's messages, or may be given.
 */
export function validate<T extends Message>(message: T, schema?: DescMessage): FieldViolation[] {
  const desc = schema ?? registry.getMessage(message.$typeName);
  if (!desc) throw new Error(`validate: unknown message type ${message.$typeName}`);
  validator ??= createValidator();
  const r = validator.validate(desc, message as never);
  switch (r.kind) {
    case "valid":
      return [];
    case "invalid":
      return r.violations.map((v) => ({ field: pathToString(v.field), ruleId: v.ruleId, message: v.message }));
    default:
      throw r.error;
  }
}
