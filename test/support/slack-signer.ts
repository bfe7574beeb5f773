// Signs requests like Slack does (v0 HMAC), for tests that post straight into the app.
import { computeSlackSignature } from "../../src/adapters/slack/signature.js";

export {
  computeSlackSignature,
  verifySlackSignature,
  SLACK_SIGNATURE_MAX_AGE_SECONDS,
} from "../../src/adapters/slack/signature.js";

/** Headers Slack would send with `body` at `timestampSeconds` (now by default). */
export function signSlackRequest(
  secret: string,
  body: string,
  timestampSeconds: number = Math.floor(Date.now() / 1000),
): { "x-slack-signature": string; "x-slack-request-timestamp": string } {
  return {
    "x-slack-signature": computeSlackSignature(secret, timestampSeconds, body),
    "x-slack-request-timestamp": String(timestampSeconds),
  };
}
