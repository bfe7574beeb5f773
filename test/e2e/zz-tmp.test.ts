import { writeFileSync } from "node:fs";
import { test } from "@jest/globals";
import { BOT_USER, CHANNEL, REPO, startE2E } from "./harness.js";

test("dump", async () => {
  const env = await startE2E({ executor: "kubernetes" });
  try {
    const { ts: root } = await env.slack.user("U0REPORTER").postMessage({ channel: CHANNEL, text: "add(2, 3) returns -1" });
    await env.say(`<@${BOT_USER}> fix it attempts=2`, root);
    const plan = await env.waitFor("plan", () => env.botMessages(root).find((m) => m.text.includes("Make add")));
    await env.react(plan.ts, "white_check_mark");
    await env.waitFor("pr", () => env.github.pulls(REPO)[0]);
    await new Promise((r) => setTimeout(r, 3000));
    const out = env.slack.messages(CHANNEL, root).map((m) => `=== ${m.ts} ${m.user} edits=${m.edits.length}\n${m.text}\n${JSON.stringify(m.blocks, null, 1)}\n--- versions:\n${m.edits.map((e) => e.text).join("\n")}`).join("\n\n");
    writeFileSync("/tmp/e2e-dump.txt", `${out}\n\nPULLS\n${JSON.stringify(env.github.pulls(REPO), null, 1)}\nEPHEMERALS\n${JSON.stringify(env.slack.ephemerals())}\nLOG\n${env.log()}`);
  } finally {
    await env.close();
  }
}, 60_000);
