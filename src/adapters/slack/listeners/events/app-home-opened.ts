// `app_home_opened`: publish the viewer's tasks and spend on the Home tab.
import type { App } from "@slack/bolt";
import { z } from "zod";
import { publishHome } from "../../../../services/home.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";

const HomeOpened = z.looseObject({
  type: z.literal("app_home_opened"),
  user: z.string().min(1),
  tab: z.string().optional(),
});

export function registerAppHomeOpened(app: App, deps: SlackServiceDeps): void {
  app.event("app_home_opened", async ({ event }) => {
    const parsed = HomeOpened.safeParse(event);
    if (!parsed.success || (parsed.data.tab !== undefined && parsed.data.tab !== "home")) return;
    const user = parsed.data.user;
    // Nothing to record: acknowledge now, render and publish afterwards.
    deps.background(`home ${user}`, () => publishHome(deps, user));
  });
}
