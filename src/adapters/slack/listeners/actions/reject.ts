// The "Reject" button (action `ACTION_IDS.reject`): the twin of its reaction.
import type { App } from "@slack/bolt";
import { ACTION_IDS } from "../../../../core/render.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { registerControlButton } from "./control.js";

export function registerRejectButton(app: App, deps: SlackServiceDeps): void {
  registerControlButton(app, deps, ACTION_IDS.reject, () => "reject");
}
