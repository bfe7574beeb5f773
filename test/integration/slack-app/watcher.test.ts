// The bug-report watcher: one offer per thread in watched channels, for people's and alerting bots'
// reports, never for Baton itself, replies or unwatched channels; 🛠 on the offer fixes the report.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { randomBytes } from "node:crypto";
import { looksLikeBugReport } from "../../../src/services/watcher.js";
import { eventually, startHarness, type Harness } from "./harness.js";

const OFFER = "Looks like a bug report";

describe("heuristics", () => {
  test.each([
    ["TypeError: Cannot read properties of undefined (reading 'id')\n    at render (app.js:10:5)", true],
    ['Traceback (most recent call last):\n  File "x.py", line 3, in <module>', true],
    ["panic: runtime error: index out of range", true],
    ["checkout returns HTTP 502 Bad Gateway since 10:00", true],
    ["the export button doesn't work anymore", true],
    ["login is broken again", true],
    ["Looks like a regression in search ranking", true],
    ["the app crashes when I rotate the phone", true],
    ["lunch at 12?", false],
    ["shipping the release today, great work everyone", false],
    ["there is an error somewhere maybe", false],
    ["error and failure in the nightly build", true],
  ])("%s → %s", (text, expected) => {
    expect(looksLikeBugReport(text)).toBe(expected);
  });

  test("a 1 MB message is judged quickly", () => {
    const started = performance.now();
    looksLikeBugReport(" at ".repeat(250_000) + "x:1");
    looksLikeBugReport("a".repeat(1_000_000));
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe("in Slack", () => {
  let h: Harness;
  let classifyAnswer: boolean | undefined | "throw" = undefined;
  const classified: string[] = [];

  beforeAll(async () => {
    h = await startHarness({
      policy: { channels: { CWATCH: { repo: "acme/web", watch: true }, CQUIET: { repo: "acme/web" } } },
      classify: async (text) => {
        classified.push(text);
        if (classifyAnswer === "throw") throw new Error("model down");
        return classifyAnswer;
      },
    });
  });

  afterAll(async () => {
    await h?.close();
  });

  afterEach(async () => {
    classifyAnswer = undefined;
    await h.settle();
  });

  const offers = (channel: string, ts: string) =>
    h.emulator.messages(channel, ts).filter((m) => m.user === "UBATON" && m.text.includes(OFFER));

  test("a bug report gets exactly one offer, even when its event is delivered again", async () => {
    const alice = h.emulator.user("UALICE");
    const report = await alice.postMessage({
      channel: "CWATCH",
      text: "Uncaught TypeError: x is undefined\n    at main (index.js:4:2)",
    });
    await h.settle();
    expect(offers("CWATCH", report.ts)).toHaveLength(1);
    // Redelivered as a new event (another event id): still one offer.
    await h.emulator.deliver(
      {
        type: "event_callback",
        event_id: `Ev${randomBytes(5).toString("hex")}`,
        team_id: h.emulator.teamId,
        event: {
          type: "message",
          channel: "CWATCH",
          user: "UALICE",
          ts: report.ts,
          text: "Uncaught TypeError: x is undefined",
        },
      },
      { kind: "event" },
    );
    await h.settle();
    expect(offers("CWATCH", report.ts)).toHaveLength(1);
    expect(await h.tasksInChannel("CWATCH")).toEqual([]);
  });

  test("alerting bots' reports count; chatter, replies and unwatched channels do not", async () => {
    const alerts = h.emulator.user("UALERTS", { isBot: true, botId: "BALERTS" });
    const alert = await alerts.postMessage({
      channel: "CWATCH",
      text: "[FIRING] api: HTTP 503 Service Unavailable on /v1/orders",
    });
    const chatter = await h.emulator.user("UBOB").postMessage({ channel: "CWATCH", text: "coffee anyone?" });
    const reply = await h.emulator
      .user("UBOB")
      .postMessage({ channel: "CWATCH", threadTs: chatter.ts, text: "TypeError: boom" });
    const quiet = await h.emulator.user("UBOB").postMessage({ channel: "CQUIET", text: "TypeError: boom" });
    await h.settle();
    expect(offers("CWATCH", alert.ts)).toHaveLength(1);
    expect(offers("CWATCH", chatter.ts)).toHaveLength(0);
    expect(h.emulator.messages("CWATCH", chatter.ts).filter((m) => m.user === "UBATON")).toEqual([]);
    expect(reply.ts).toBeDefined();
    expect(h.emulator.messages("CQUIET").filter((m) => m.user === "UBATON")).toEqual([]);
    expect(offers("CQUIET", quiet.ts)).toHaveLength(0);
  });

  test("Baton's own messages are never offered help", async () => {
    await h.emulator.deliver(
      {
        type: "event_callback",
        event_id: `Ev${randomBytes(5).toString("hex")}`,
        team_id: h.emulator.teamId,
        event: {
          type: "message",
          subtype: "bot_message",
          channel: "CWATCH",
          user: "UBATON",
          bot_id: "BBATON",
          ts: "1700000001.000100",
          text: "Error: the run failed",
        },
      },
      { kind: "event" },
    );
    await h.settle();
    expect(
      h.emulator.calls("chat.postMessage").filter((c) => c.args.thread_ts === "1700000001.000100"),
    ).toEqual([]);
  });

  test("the model confirms candidates; the heuristics decide when it fails", async () => {
    const alice = h.emulator.user("UALICE");
    classifyAnswer = false;
    const declined = await alice.postMessage({
      channel: "CWATCH",
      text: "Error: nothing is wrong, just testing the word",
    });
    await h.settle();
    expect(offers("CWATCH", declined.ts)).toHaveLength(0);
    expect(classified.at(-1)).toContain("just testing");
    classifyAnswer = "throw";
    const failing = await alice.postMessage({ channel: "CWATCH", text: "panic: nil map write in worker" });
    await h.settle();
    expect(offers("CWATCH", failing.ts)).toHaveLength(1);
    const before = classified.length;
    await alice.postMessage({ channel: "CWATCH", text: "standup moved to 10" });
    await h.settle();
    expect(classified.length).toBe(before);
  });

  test("🛠 on Baton's offer starts a task in the report's thread", async () => {
    const alice = h.emulator.user("UALICE");
    const report = await alice.postMessage({
      channel: "CWATCH",
      text: "the invoice PDF download doesn't work, 500 error",
    });
    await h.settle();
    const [offer] = offers("CWATCH", report.ts);
    if (!offer) throw new Error("no offer");
    await h.emulator.user("UBOB").react({ channel: "CWATCH", ts: offer.ts, name: "hammer_and_wrench" });
    await h.settle();
    const tasks = (await h.tasksInChannel("CWATCH")).filter((t) => t.threadTs === report.ts);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.requester.userId).toBe("UBOB");
    await eventually(() => h.emulator.reactions("CWATCH", report.ts).some((r) => r.name === "eyes"));
  });
});
