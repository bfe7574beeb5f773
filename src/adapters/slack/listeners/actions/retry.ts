// The "Retry" button (action `ACTION_IDS.retry`): the twin of its reaction.
import type { App } from "@slack/bolt";
import { ACTION_IDS } from "../../../../core/render.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { registerControlButton } from "./control.js";

export function registerRetryButton(app: App, deps: SlackServiceDeps): void {
  registerControlButton(app, deps, ACTION_IDS.retry, () => "retry");
}
