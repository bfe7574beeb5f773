// The "Fix it" button (e.g. on the watcher's offer): the twin of 🛠 on the message it belongs to.
import type { App } from "@slack/bolt";
import { ACTION_IDS } from "../../../../core/render.js";
import { handleFixRequest } from "../../../../services/mentions.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { readClick } from "./payload.js";

export function registerFixButton(app: App, deps: SlackServiceDeps): void {
  app.action(ACTION_IDS.fix, async ({ ack, body, action }) => {
    await ack();
    const click = readClick(body, action);
    if (!click?.channel || !click.messageTs) return;
    const { channel, messageTs, user } = click;
    await handleFixRequest(deps, { channel, ts: messageTs, user, source: "button" });
  });
}
