// App Home: on `app_home_opened`, publish the viewer's active and recent tasks (state, thread links,
// PR links) and their model spend today.
import { renderHome } from "../core/render.js";
import { threadPermalinks, type SlackServiceDeps } from "./slack-context.js";

/** How many of the viewer's tasks the Home tab shows (newest first). */
const HOME_TASKS = 20;

export async function publishHome(deps: SlackServiceDeps, userId: string): Promise<void> {
  const [tasks, spentUsd] = await Promise.all([
    deps.store.listByUser(userId, HOME_TASKS),
    deps.budget.userSpentToday(userId).catch((error: unknown) => {
      deps.logger.warn({ err: error }, "reading the user's spend failed");
      return undefined;
    }),
  ]);
  const permalinks = await threadPermalinks(deps, tasks);
  const blocks = renderHome(
    { tasks, permalinks, ...(spentUsd !== undefined ? { budget: { spentUsd } } : {}) },
    { now: deps.clock.now(), redact: deps.redact },
  );
  await deps.chat.publishHome({ userId, blocks });
}
