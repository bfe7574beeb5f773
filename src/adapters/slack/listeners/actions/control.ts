// Approve / Reject / Cancel / Retry / Choose buttons: the button twins of the reactions. The value
// is the task id (choose: `T-…:<attempt>`); the state machine decides whether the clicker may.
import type { App } from "@slack/bolt";
import { applyControl, type ControlAction } from "../../../../services/controls.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { readClick, taskIdIn, type ButtonClick } from "./payload.js";

export function registerControlButton(
  app: App,
  deps: SlackServiceDeps,
  actionId: string,
  actionOf: (click: ButtonClick) => ControlAction | undefined,
): void {
  app.action(actionId, async ({ ack, body, action }) => {
    await ack();
    const click = readClick(body, action);
    if (!click) return;
    const taskId = taskIdIn(click.action.value);
    const control = actionOf(click);
    if (!taskId || control === undefined) return;
    await applyControl(deps, { taskId, user: click.user, action: control });
  });
}
