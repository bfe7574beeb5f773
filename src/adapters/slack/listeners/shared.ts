// Helpers shared by the listeners: the event-level claim that makes a redelivered request harmless,
// released when handling failed so Slack's retry can do the work.
import type { SlackServiceDeps } from "../../../services/slack-context.js";
import { CLAIM_TTL } from "../../../services/slack-context.js";

/**
 * Runs `work` once per key across retries and replicas. A failure releases the claim and rethrows,
 * so the request is not acknowledged and Slack's next delivery tries again.
 */
export async function once(
  deps: SlackServiceDeps,
  key: string,
  work: () => Promise<void>,
  ttlSeconds: number = CLAIM_TTL.message,
): Promise<void> {
  if (!(await deps.claims.claim(key, ttlSeconds))) {
    deps.logger.debug({ key }, "duplicate slack delivery ignored");
    return;
  }
  try {
    await work();
  } catch (error) {
    await deps.claims.release(key).catch(() => undefined);
    throw error;
  }
}

/** Whether a message or event comes from Baton itself (never acted on). */
export function isSelf(
  deps: SlackServiceDeps,
  from: { user?: string | undefined; bot_id?: string | undefined },
): boolean {
  const me = deps.identity();
  return (
    (from.user !== undefined && from.user === me.userId) ||
    (from.bot_id !== undefined && from.bot_id === me.botId)
  );
}
