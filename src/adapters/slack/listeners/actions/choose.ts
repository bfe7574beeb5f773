// The "choose attempt N" buttons on the attempts summary (value `T-…:<attempt>`): the twin of one…four.
import type { App } from "@slack/bolt";
import { ACTION_IDS, parseChooseValue } from "../../../../core/render.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { registerControlButton } from "./control.js";

export function registerChooseButton(app: App, deps: SlackServiceDeps): void {
  registerControlButton(app, deps, ACTION_IDS.choose, (click) => {
    const parsed = parseChooseValue(click.action.value ?? "");
    return parsed ? { choose: parsed.attempt } : undefined;
  });
}
