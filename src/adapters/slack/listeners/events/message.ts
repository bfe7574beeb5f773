// `message` (channels and private channels): a mention of Baton → the mention use case (deduped with
// `app_mention`); a new top-level message in a watched channel → the bug-report watcher.
import type { App } from "@slack/bolt";
import { z } from "zod";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { watchMessage } from "../../../../services/watcher.js";
import { isSelf } from "../shared.js";
import { mentionOnce } from "./app-mention.js";

const Attachment = z.looseObject({
  pretext: z.string().optional(),
  title: z.string().optional(),
  text: z.string().optional(),
  fallback: z.string().optional(),
});

const MessageEvent = z.looseObject({
  type: z.literal("message"),
  channel: z.string().min(1),
  ts: z.string().min(1),
  thread_ts: z.string().optional(),
  user: z.string().optional(),
  bot_id: z.string().optional(),
  subtype: z.string().optional(),
  text: z.string().default(""),
  attachments: z.array(Attachment).optional(),
});

/** Subtypes that are new messages; edits, deletions, joins and the like are not. */
const NEW_MESSAGE_SUBTYPES = new Set([undefined, "bot_message", "thread_broadcast", "file_share"]);

/** Alerting bots put the report in attachments; the watcher reads all of it. */
function fullText(event: z.infer<typeof MessageEvent>): string {
  const parts = [event.text];
  for (const a of event.attachments ?? [])
    parts.push(a.pretext ?? "", a.title ?? "", a.text ?? a.fallback ?? "");
  return parts.filter((p) => p !== "").join("\n");
}

export function registerMessage(app: App, deps: SlackServiceDeps): void {
  app.event("message", async ({ event }) => {
    const parsed = MessageEvent.safeParse(event);
    if (!parsed.success) return;
    const message = parsed.data;
    if (!NEW_MESSAGE_SUBTYPES.has(message.subtype) || isSelf(deps, message)) return;
    const fromBot = message.bot_id !== undefined || message.subtype === "bot_message";
    const mentionsBaton =
      message.text.includes(`<@${deps.identity().userId}>`) ||
      message.text.includes(`<@${deps.identity().userId}|`);
    if (mentionsBaton && !fromBot) {
      await mentionOnce(deps, message);
      return;
    }
    const topLevel = message.thread_ts === undefined || message.thread_ts === message.ts;
    if (!topLevel || !deps.policy.channels[message.channel]?.watch) return;
    // Classification may call a model: it runs after the acknowledgement.
    deps.background(`watch ${message.channel}:${message.ts}`, () =>
      watchMessage(deps, { channel: message.channel, ts: message.ts, text: fullText(message) }),
    );
  });
}
