// The repository picker (a static select): the selection sets the waiting task's repository and
// starts it. The option value is `<request id>:<owner/name>`; the request id is the waiting task's id.
import type { App } from "@slack/bolt";
import { ACTION_IDS, parseRepoPickValue } from "../../../../core/render.js";
import { selectRepo } from "../../../../services/requests.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";
import { readClick, taskIdIn } from "./payload.js";

export function registerRepoPick(app: App, deps: SlackServiceDeps): void {
  app.action(ACTION_IDS.repoPick, async ({ ack, body, action }) => {
    await ack();
    const click = readClick(body, action);
    if (!click) return;
    const picked = parseRepoPickValue(click.action.selected_option?.value ?? click.action.value ?? "");
    const taskId = taskIdIn(picked?.requestId);
    if (!picked || !taskId) return;
    const repo = picked.repo;
    await selectRepo(deps, {
      taskId,
      user: click.user,
      repo,
      ...(click.channel ? { channel: click.channel } : {}),
    });
  });
}
