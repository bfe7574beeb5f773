// The Slack app manifest: a valid manifest with exactly the scopes and events Baton uses.
import { expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { z } from "zod";

const Manifest = z.strictObject({
  display_information: z.looseObject({ name: z.string().min(1).max(35), description: z.string().max(140) }),
  features: z.strictObject({
    app_home: z.looseObject({ home_tab_enabled: z.literal(true) }),
    bot_user: z.looseObject({ display_name: z.string().min(1) }),
    slash_commands: z.array(
      z.looseObject({ command: z.string(), url: z.string().url(), description: z.string().min(1) }),
    ),
  }),
  oauth_config: z.strictObject({ scopes: z.strictObject({ bot: z.array(z.string()) }) }),
  settings: z.looseObject({
    event_subscriptions: z.strictObject({ request_url: z.string().url(), bot_events: z.array(z.string()) }),
    interactivity: z.looseObject({ is_enabled: z.literal(true), request_url: z.string().url() }),
    socket_mode_enabled: z.boolean(),
  }),
});

test("manifests/slack-app.yaml declares exactly what Baton uses", () => {
  const manifest = Manifest.parse(
    parse(readFileSync(new URL("../../../manifests/slack-app.yaml", import.meta.url), "utf8")),
  );
  expect([...manifest.oauth_config.scopes.bot].sort()).toEqual(
    [
      "app_mentions:read",
      "channels:history",
      "chat:write",
      "commands",
      "groups:history",
      "reactions:read",
      "reactions:write",
      "users:read",
    ].sort(),
  );
  expect([...manifest.settings.event_subscriptions.bot_events].sort()).toEqual(
    ["app_home_opened", "app_mention", "message.channels", "message.groups", "reaction_added"].sort(),
  );
  expect(manifest.features.slash_commands.map((c) => c.command)).toEqual(["/baton"]);
  for (const url of [
    manifest.settings.event_subscriptions.request_url,
    manifest.settings.interactivity.request_url,
    ...manifest.features.slash_commands.map((c) => c.url),
  ]) {
    expect(new URL(url).pathname).toBe("/slack/events");
  }
});
