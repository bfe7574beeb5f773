// `/baton …`: every subcommand of CONTRACT §5; the answer goes to the person alone (ephemeral).
import type { App } from "@slack/bolt";
import { z } from "zod";
import { handleSlashCommand } from "../../../../services/commands.js";
import type { SlackServiceDeps } from "../../../../services/slack-context.js";

const SlashCommand = z.looseObject({
  command: z.string(),
  text: z.string().default(""),
  user_id: z.string().min(1),
  channel_id: z.string().min(1),
  trigger_id: z.string().optional(),
});

export function registerBatonCommand(app: App, deps: SlackServiceDeps): void {
  // Operators may install the command under another name (e.g. /baton-dev).
  app.command(/^\/baton/, async ({ command, ack }) => {
    const parsed = SlashCommand.safeParse(command);
    if (!parsed.success) {
      await ack({ response_type: "ephemeral", text: "That command could not be read. Try `/baton help`." });
      return;
    }
    const { text, user_id, channel_id, trigger_id } = parsed.data;
    try {
      const answer = await handleSlashCommand(deps, {
        channel: channel_id,
        user: user_id,
        text,
        ...(trigger_id ? { triggerId: trigger_id } : {}),
      });
      await ack(
        answer
          ? {
              response_type: "ephemeral",
              text: answer.text,
              ...(answer.blocks ? { blocks: answer.blocks } : {}),
            }
          : undefined,
      );
    } catch (error) {
      // Slack does not redeliver slash commands: say so plainly instead of a bare HTTP error.
      deps.logger.error({ err: error, channel: channel_id }, "/baton failed");
      await ack({
        response_type: "ephemeral",
        text: "Something went wrong on Baton's side. Please try again in a moment.",
      });
    }
  });
}
