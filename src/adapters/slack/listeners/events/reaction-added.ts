// `reaction_added`: 🛠 on any message starts a task; ✅ ❌ 🛑 🔁 one…four on Baton's messages
// control the task they belong to (CONTRACT §5 "Reactions").
import type { App } from "@slack/bolt";
import { z } from "zod";
import { parseReaction } from "../../../../core/intents.js";
import { reactionControl } from "../../../../services/controls.js";
import { handleFixRequest } from "../../../../services/mentions.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { isSelf } from "../shared.js";

const ReactionAdded = z.looseObject({
  type: z.literal("reaction_added"),
  user: z.string().min(1),
  reaction: z.string().min(1),
  item: z.looseObject({ type: z.string(), channel: z.string().optional(), ts: z.string().optional() }),
  item_user: z.string().optional(),
});

export function registerReactionAdded(app: App, deps: SlackServiceDeps): void {
  app.event("reaction_added", async ({ event }) => {
    const parsed = ReactionAdded.safeParse(event);
    if (!parsed.success) return;
    const { user, reaction, item } = parsed.data;
    if (item.type !== "message" || !item.channel || !item.ts || isSelf(deps, { user })) return;
    const intent = parseReaction(reaction);
    if (intent === undefined) return;
    const channel = item.channel;
    const ts = item.ts;
    if (intent === "fix") {
      await handleFixRequest(deps, { channel, ts, user, source: "reaction" });
      return;
    }
    await reactionControl(deps, { channel, ts, user, action: intent });
  });
}
