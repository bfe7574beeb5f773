// Child process for B1/B5/B8: either the real Baton bot (`startBot`, role from argv) or a bare Bolt
// app that only acks (the baseline). Configuration comes as JSON in BENCH_CHILD; the parent asks for
// RSS and event-loop delay over IPC ("stats", "reset") and ends it with "stop".
import bolt from "@slack/bolt";
import { loadConfig } from "../../src/config/load.js";
import { startBot, type BotRole } from "../../src/roles/bot.js";
import { ChildConfig, ParentMessage, type ChildMessage } from "./protocol.js";

async function main(): Promise<void> {
  const config = ChildConfig.parse(JSON.parse(process.env.BENCH_CHILD ?? "{}"));
  const send = (message: ChildMessage) => process.send?.(message);
  // Event-loop delay: how late a 5 ms timer fires (monitorEventLoopDelay folds its own resolution
  // into every sample, which hides small delays).
  let delays: number[] = [];
  let expected = performance.now() + 5;
  setInterval(() => {
    const now = performance.now();
    delays.push(Math.max(0, now - expected));
    expected = now + 5;
  }, 5).unref();
  const pct = (p: number) => {
    const sorted = [...delays].sort((a, b) => a - b);
    return sorted.length === 0
      ? 0
      : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  };
  let stop: () => Promise<void>;
  let port: number;
  if (config.kind === "baton") {
    const bot = await startBot(loadConfig(config.env, "bot"), config.role as BotRole);
    port = bot.port;
    stop = bot.stop;
  } else {
    // The baseline: Bolt's own HTTP receiver, signature checks on, listeners that do nothing.
    const app = new bolt.App({
      signingSecret: config.env.SLACK_SIGNING_SECRET!,
      token: config.env.SLACK_BOT_TOKEN!,
      tokenVerificationEnabled: false,
      botId: "BBATON",
      botUserId: "UBATON",
      clientOptions: { slackApiUrl: config.env.SLACK_API_URL! },
      logLevel: bolt.LogLevel.ERROR,
    });
    app.event("app_mention", async () => undefined);
    app.event("message", async () => undefined);
    port = Number(config.env.PORT);
    await app.start(port);
    stop = () => app.stop().then(() => undefined);
  }
  process.on("message", (raw: unknown) => {
    const message = ParentMessage.parse(raw);
    if (message.type === "reset") delays = [];
    else if (message.type === "stats") {
      const memory = process.memoryUsage();
      send({
        type: "stats",
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        loopP50Ms: pct(50),
        loopP99Ms: pct(99),
        loopMaxMs: pct(100),
      });
    } else {
      void stop().finally(() => {
        send({ type: "stopped" });
        process.disconnect();
      });
    }
  });
  // The runner went away (crash, Ctrl-C): leave no process behind.
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready", port });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench child failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
