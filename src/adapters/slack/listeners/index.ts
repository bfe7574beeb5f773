// Registers every listener on the Bolt app (one listener per file, grouped by kind).
import type { App } from "@slack/bolt";
import type { SlackServiceDeps } from "../../../services/slack-context.js";
import { registerApproveButton } from "./actions/approve.js";
import { registerCancelButton } from "./actions/cancel.js";
import { registerChooseButton } from "./actions/choose.js";
import { registerFixButton } from "./actions/fix.js";
import { registerRejectButton } from "./actions/reject.js";
import { registerRepoPick } from "./actions/repo-pick.js";
import { registerRetryButton } from "./actions/retry.js";
import { registerBatonCommand } from "./commands/baton.js";
import { registerAppHomeOpened } from "./events/app-home-opened.js";
import { registerAppMention } from "./events/app-mention.js";
import { registerMessage } from "./events/message.js";
import { registerReactionAdded } from "./events/reaction-added.js";
import { once } from "./shared.js";
import { CLAIM_TTL } from "../../../services/slack-context.js";

export function registerListeners(app: App, deps: SlackServiceDeps): void {
  // Every Events API delivery is handled once per event_id, across retries and replicas.
  app.use(async ({ body, next }) => {
    const eventId = (body as { type?: unknown; event_id?: unknown }).event_id;
    if ((body as { type?: unknown }).type !== "event_callback" || typeof eventId !== "string") {
      await next();
      return;
    }
    await once(deps, `event:${eventId}`, () => next(), CLAIM_TTL.event);
  });
  registerAppMention(app, deps);
  registerMessage(app, deps);
  registerReactionAdded(app, deps);
  registerAppHomeOpened(app, deps);
  registerBatonCommand(app, deps);
  registerApproveButton(app, deps);
  registerRejectButton(app, deps);
  registerCancelButton(app, deps);
  registerRetryButton(app, deps);
  registerChooseButton(app, deps);
  registerRepoPick(app, deps);
  registerFixButton(app, deps);
}
