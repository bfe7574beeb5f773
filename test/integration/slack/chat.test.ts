// The Slack chat adapter (ChatPort over @slack/web-api) against the Slack emulator.
import { afterEach, beforeEach, describe, expect, test } from "@jest/globals";
import { createSlackChat, SlackApiError, type SlackChat } from "../../../src/adapters/slack/chat.js";
import { createMetrics, type Metrics } from "../../../src/adapters/metrics/metrics.js";
import { RateLimitedError, UnknownOutcomeError } from "../../../src/core/ports/chat.js";
import { createRedactor } from "../../../src/core/redact.js";
import { silentLogger } from "../../../src/shared/logger.js";
import { startSlackEmulator, type SlackEmulator } from "../../emulators/slack/index.js";
import { freePort } from "../../support/free-port.js";

const SECRET = "sk-test-abcdefghijklmnopqrstuvwxyz0123";

let emu: SlackEmulator;
let metrics: Metrics;
let chat: SlackChat;

beforeEach(async () => {
  // Posting speed is the Notifier's business; these tests post freely.
  emu = await startSlackEmulator({ rateLimits: { "chat.postMessage": null } });
  metrics = createMetrics({ defaultMetrics: false });
  chat = createSlackChat({
    token: emu.botToken,
    apiUrl: emu.apiUrl,
    logger: silentLogger(),
    metrics,
    redact: createRedactor([SECRET]),
    timeoutMs: 2000,
  });
});
afterEach(async () => {
  await emu.close();
});

async function counter(
  name: "baton_slack_api_calls_total" | "baton_slack_rate_limited_total",
  labels: Record<string, string>,
) {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as { labels: Record<string, string>; value: number }[];
  return values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((a, v) => a + v.value, 0);
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  throw new Error("expected a failure");
}

describe("Slack chat adapter", () => {
  test("posts with unfurling off, metadata kept, secrets and mass mentions removed", async () => {
    const root = await chat.postMessage({ channel: "CCHAT", text: "root" });
    const { ts } = await chat.postMessage({
      channel: "CCHAT",
      threadTs: root.ts,
      text: `token ${SECRET} <!channel>`,
      blocks: [{ type: "section", text: { type: "mrkdwn", text: `key=${SECRET} <!here>` } }],
      metadata: {
        event_type: "baton_message",
        event_payload: { task_id: "T-AAAAAA", kind: "status", key: "k1" },
      },
    });
    const stored = emu.message("CCHAT", ts)!;
    expect(stored).toMatchObject({ threadTs: root.ts, unfurlLinks: false, unfurlMedia: false });
    expect(JSON.stringify(stored)).not.toContain(SECRET);
    expect(JSON.stringify(stored)).not.toContain("<!channel>");
    expect(JSON.stringify(stored)).not.toContain("<!here>");
    expect(stored.text).toContain("[REDACTED]");
    expect(stored.metadata).toEqual({
      event_type: "baton_message",
      event_payload: { task_id: "T-AAAAAA", kind: "status", key: "k1" },
    });

    await chat.updateMessage({ channel: "CCHAT", ts, text: `now ${SECRET}` });
    expect(emu.message("CCHAT", ts)?.text).toBe("now [REDACTED]");
    expect(await counter("baton_slack_api_calls_total", { method: "chat.postMessage", outcome: "ok" })).toBe(
      2,
    );
  });

  test("429 becomes RateLimitedError with Retry-After, counted", async () => {
    emu.injectFault({ method: "chat.update", kind: "429", retryAfter: 3 });
    const { ts } = await chat.postMessage({ channel: "CCHAT", text: "s" });
    const error = await caught(chat.updateMessage({ channel: "CCHAT", ts, text: "t" }));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterSeconds).toBe(3);
    expect(await counter("baton_slack_rate_limited_total", { method: "chat.update" })).toBe(1);
    expect(emu.calls("chat.update")).toHaveLength(1);
  });

  test("a lost or 5xx answer to chat.postMessage is an unknown outcome; other methods fail plainly", async () => {
    emu.injectFault({ method: "chat.postMessage", kind: "drop_response" });
    expect(await caught(chat.postMessage({ channel: "CLOST", text: "maybe" }))).toBeInstanceOf(
      UnknownOutcomeError,
    );
    expect(emu.messages("CLOST").map((m) => m.text)).toEqual(["maybe"]);

    emu.injectFault({ method: "chat.postMessage", kind: "500" });
    expect(await caught(chat.postMessage({ channel: "CLOST", text: "again" }))).toBeInstanceOf(
      UnknownOutcomeError,
    );

    emu.injectFault({ method: "chat.postMessage", kind: "delay", delayMs: 3000 });
    expect(await caught(chat.postMessage({ channel: "CLOST", text: "slow" }))).toBeInstanceOf(
      UnknownOutcomeError,
    );

    const ts = emu.messages("CLOST")[0]!.ts;
    emu.injectFault({ method: "chat.update", kind: "500" });
    const error = await caught(chat.updateMessage({ channel: "CLOST", ts, text: "x" }));
    expect(error).toBeInstanceOf(SlackApiError);
    expect((error as SlackApiError).transient).toBe(true);

    const refused = await caught(chat.postMessage({ channel: "nowhere", text: "x" }));
    expect(refused).toMatchObject({ code: "channel_not_found", transient: false });
  });

  test("no connection at all is a plain transient failure: nothing can have been posted", async () => {
    const closed = createSlackChat({
      token: emu.botToken,
      apiUrl: `http://127.0.0.1:${await freePort()}/api/`,
      logger: silentLogger(),
      metrics,
      redact: (t) => t,
    });
    const error = await caught(closed.postMessage({ channel: "CX", text: "x" }));
    expect(error).toBeInstanceOf(SlackApiError);
    expect(error).toMatchObject({ code: "unreachable", transient: true });
  });

  test("reactions are ensured; threads are read oldest first within the limit", async () => {
    const { ts: root } = await chat.postMessage({ channel: "CTHR", text: "root" });
    await chat.addReaction({ channel: "CTHR", ts: root, name: "eyes" });
    await chat.addReaction({ channel: "CTHR", ts: root, name: "eyes" });
    expect(emu.reactions("CTHR", root)).toEqual([{ name: "eyes", users: [emu.botUserId] }]);

    const alice = emu.user("UALICE");
    emu.setEventsUrl("http://127.0.0.1:9/unused");
    for (let i = 0; i < 5; i++) await chat.postMessage({ channel: "CTHR", threadTs: root, text: `r${i}` });
    await alice.postMessage({ channel: "CTHR", threadTs: root, text: "from alice" }).catch(() => undefined);
    const three = await chat.readThread({ channel: "CTHR", threadTs: root, limit: 3 });
    expect(three.map((m) => m.text)).toEqual(["root", "r0", "r1"]);
    const all = await chat.readThread({ channel: "CTHR", threadTs: root, limit: 500 });
    expect(all).toHaveLength(7);
    expect(all.at(-1)).toMatchObject({ user: "UALICE", text: "from alice" });
    expect(all[1]).toMatchObject({ user: emu.botUserId, botId: emu.botId });
  });

  test("finds only its own tagged messages", async () => {
    const { ts: root } = await chat.postMessage({ channel: "CTAG", text: "root" });
    const tagged = await chat.postMessage({
      channel: "CTAG",
      threadTs: root,
      text: "status",
      metadata: {
        event_type: "baton_message",
        event_payload: { task_id: "T-BBBBBB", kind: "status", key: "T-BBBBBB:status" },
      },
    });
    await chat.postMessage({
      channel: "CTAG",
      threadTs: root,
      text: "other",
      metadata: { event_type: "something_else", event_payload: { x: 1 } },
    });
    const found = await chat.findTaggedMessages({
      channel: "CTAG",
      threadTs: root,
      eventType: "baton_message",
    });
    expect(found).toEqual([
      {
        ts: tagged.ts,
        metadata: {
          event_type: "baton_message",
          event_payload: { task_id: "T-BBBBBB", kind: "status", key: "T-BBBBBB:status" },
        },
      },
    ]);
  });

  test("identity, names, permalinks, App Home, ephemerals", async () => {
    expect(await chat.whoAmI()).toEqual({ userId: emu.botUserId, botId: emu.botId, teamId: emu.teamId });
    await chat.whoAmI();
    expect(emu.calls("auth.test")).toHaveLength(1);

    emu.user("UBOB", { name: "bob" });
    expect(await chat.userName("UBOB")).toBe("bob");
    expect(await chat.userName("UBOB")).toBe("bob");
    expect(emu.calls("users.info")).toHaveLength(1);
    expect(await chat.userName("UNOBODY")).toBeUndefined();

    const { ts } = await chat.postMessage({ channel: "CMISC", text: "x" });
    expect(await chat.permalink({ channel: "CMISC", ts })).toContain("/archives/CMISC/p");
    expect(await chat.permalink({ channel: "CMISC", ts: "1.000000" })).toBeUndefined();

    await chat.publishHome({
      userId: "UBOB",
      blocks: [{ type: "section", text: { type: "mrkdwn", text: `hi ${SECRET}` } }],
    });
    expect(JSON.stringify(emu.homeViews("UBOB"))).toContain("hi [REDACTED]");

    await chat.postEphemeral({ channel: "CMISC", user: "UBOB", threadTs: ts, text: "just you" });
    expect(emu.ephemerals({ user: "UBOB" })).toEqual([
      expect.objectContaining({ text: "just you", threadTs: ts }),
    ]);
  });
});
