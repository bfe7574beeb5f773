// The "Approve" button (action `ACTION_IDS.approve`): the twin of its reaction.
import type { App } from "@slack/bolt";
import { ACTION_IDS } from "../../../../core/render.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { registerControlButton } from "./control.js";

export function registerApproveButton(app: App, deps: SlackServiceDeps): void {
  registerControlButton(app, deps, ACTION_IDS.approve, () => "approve");
}
