// `app_mention`: "@Baton …" in a channel message or thread reply → the mention use case.
import type { App } from "@slack/bolt";
import { z } from "zod";
import { handleMention } from "../../../../services/mentions.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { isSelf, once } from "../shared.js";

export const MentionEvent = z.looseObject({
  type: z.string(),
  channel: z.string().min(1),
  ts: z.string().min(1),
  thread_ts: z.string().optional(),
  user: z.string().optional(),
  bot_id: z.string().optional(),
  subtype: z.string().optional(),
  text: z.string().default(""),
});
export type MentionEvent = z.infer<typeof MentionEvent>;

/**
 * A mention arrives twice (as `app_mention` and as `message`) with different event ids: the claim on
 * `channel:ts` makes it one request whichever comes first.
 */
export async function mentionOnce(deps: SlackServiceDeps, event: MentionEvent): Promise<void> {
  // Other bots never start work by mention; Baton never acts on itself.
  if (!event.user || event.bot_id !== undefined || event.subtype === "bot_message" || isSelf(deps, event))
    return;
  const user = event.user;
  await once(deps, `mention:${event.channel}:${event.ts}`, () =>
    handleMention(deps, {
      channel: event.channel,
      ts: event.ts,
      ...(event.thread_ts ? { threadTs: event.thread_ts } : {}),
      user,
      text: event.text,
    }),
  );
}

export function registerAppMention(app: App, deps: SlackServiceDeps): void {
  app.event("app_mention", async ({ event }) => {
    const parsed = MentionEvent.safeParse(event);
    if (!parsed.success) {
      deps.logger.warn({ issues: parsed.error.issues.length }, "malformed app_mention ignored");
      return;
    }
    await mentionOnce(deps, parsed.data);
  });
}
