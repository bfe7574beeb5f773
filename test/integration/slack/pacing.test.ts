// Pacing of the Slack calls made outside the Notifier (createSlackPacer) against the Slack emulator:
// bursts stay under Slack's limits across replicas, and Retry-After is honoured before a retry.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import {
  createSlackChat,
  createSlackPacer,
  SlackApiError,
  type SlackChat,
  type SlackPacer,
  type SlackPacingLimits,
} from "../../../src/adapters/slack/chat.js";
import { createMetrics } from "../../../src/adapters/metrics/metrics.js";
import { connectRedis, waitForRedis, type Redis } from "../../../src/adapters/redis/connection.js";
import { createRedisRateBudget } from "../../../src/adapters/slack/notifier/shared-budget.js";
import { RateLimitedError } from "../../../src/core/ports/chat.js";
import { createRedactor } from "../../../src/core/redact.js";
import { silentLogger } from "../../../src/shared/logger.js";
import { startSlackEmulator, type SlackEmulator } from "../../emulators/slack/index.js";
import type { RateLimitOptions } from "../../emulators/slack/types.js";
import { testRedisUrl, uniquePrefix } from "../../support/redis.js";

const CHANNEL = "C0PACING";

let redis: Redis;
beforeAll(async () => {
  redis = connectRedis(testRedisUrl());
  await waitForRedis(redis);
});
afterAll(() => {
  redis.disconnect();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function emulator(rateLimits: RateLimitOptions): Promise<SlackEmulator> {
  // Posting the messages to react to is setup, not under test.
  const emu = await startSlackEmulator({ rateLimits: { "chat.postMessage": null, ...rateLimits } });
  cleanups.push(() => emu.close());
  return emu;
}

function chatFor(emu: SlackEmulator, pacer?: SlackPacer): SlackChat {
  return createSlackChat({
    token: emu.botToken,
    apiUrl: emu.apiUrl,
    logger: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    redact: createRedactor([]),
    timeoutMs: 5000,
    ...(pacer ? { pacer } : {}),
  });
}

function pacer(limits: Partial<SlackPacingLimits>, prefix?: string): SlackPacer {
  const p = createSlackPacer({
    logger: silentLogger(),
    limits,
    ...(prefix !== undefined ? { sharedBudget: createRedisRateBudget(redis, prefix) } : {}),
  });
  cleanups.push(() => p.close());
  return p;
}

async function postMany(emu: SlackEmulator, n = 120): Promise<string[]> {
  const raw = chatFor(emu);
  const out: string[] = [];
  for (let i = 0; i < n; i += 1) out.push((await raw.postMessage({ channel: CHANNEL, text: `m${i}` })).ts);
  return out;
}

describe("Slack pacing outside the Notifier", () => {
  // Slack's reactions.add is Tier 3 (~50/min); scaled down to 40/s so the test takes seconds.
  const slackRule = { max: 40, windowMs: 1000, scope: "workspace" as const };

  test("120 reactions from two replicas sharing the Redis budget: all added, no 429 at all", async () => {
    const emu = await emulator({ "reactions.add": slackRule });
    const messages = await postMany(emu);
    const prefix = uniquePrefix("pacing");
    const limits = { reactions: { max: slackRule.max, windowMs: slackRule.windowMs } };
    // Two replicas, each with its own local budget: only the shared one keeps them under Slack's.
    const replicas = [chatFor(emu, pacer(limits, prefix)), chatFor(emu, pacer(limits, prefix))];

    await Promise.all(
      messages.map((ts, i) => replicas[i % 2]?.addReaction({ channel: CHANNEL, ts, name: "eyes" })),
    );

    for (const ts of messages)
      expect(emu.reactions(CHANNEL, ts)).toEqual([{ name: "eyes", users: [emu.botUserId] }]);
    expect(emu.stats().ignoredRateLimits).toBe(0);
    expect(emu.stats().rateLimited).toBe(0);
    expect(emu.calls("reactions.add")).toHaveLength(120);
  }, 30_000);

  test("the same burst unpaced is rate limited (what the pacer prevents)", async () => {
    const emu = await emulator({ "reactions.add": slackRule });
    const messages = await postMany(emu);
    const raw = chatFor(emu);
    const results = await Promise.allSettled(
      messages.map((ts) => raw.addReaction({ channel: CHANNEL, ts, name: "eyes" })),
    );
    const limited = results.filter((r) => r.status === "rejected" && r.reason instanceof RateLimitedError);
    expect(limited.length).toBeGreaterThanOrEqual(120 - slackRule.max);
  }, 30_000);

  test("a 429 pauses the bucket for Retry-After, then the reactions go out; none during the window", async () => {
    const emu = await emulator({});
    const messages = await postMany(emu, 5);
    emu.injectFault({ method: "reactions.add", kind: "429", retryAfter: 1 });
    // One call in flight at a time, so the 429 reaches the pacer before anything else is sent.
    const paced = chatFor(emu, pacer({ reactions: { max: 1, windowMs: 10 } }));
    const started = Date.now();
    for (const ts of messages) await paced.addReaction({ channel: CHANNEL, ts, name: "eyes" });

    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    for (const ts of messages) expect(emu.reactions(CHANNEL, ts)).toHaveLength(1);
    expect(emu.stats().rateLimited).toBe(1);
    expect(emu.stats().ignoredRateLimits).toBe(0);
  }, 15_000);

  test("chat.postEphemeral is retried after a 429 (not processed) but not after a 500 (maybe processed)", async () => {
    const emu = await emulator({});
    const paced = chatFor(emu, pacer({}));
    emu.injectFault({ method: "chat.postEphemeral", kind: "429", retryAfter: 1 });
    await paced.postEphemeral({ channel: CHANNEL, user: "U1", text: "hello" });
    expect(emu.ephemerals({ user: "U1" }).map((e) => e.text)).toEqual(["hello"]);
    expect(emu.calls("chat.postEphemeral")).toHaveLength(2);
    expect(emu.stats().ignoredRateLimits).toBe(0);

    emu.injectFault({ method: "chat.postEphemeral", kind: "500" });
    await expect(paced.postEphemeral({ channel: CHANNEL, user: "U2", text: "again" })).rejects.toBeInstanceOf(
      SlackApiError,
    );
    expect(emu.calls("chat.postEphemeral")).toHaveLength(3);
  }, 15_000);

  test("idempotent reads are retried after Slack-side trouble", async () => {
    const emu = await emulator({});
    const [ts] = await postMany(emu, 1);
    const paced = chatFor(emu, pacer({}));
    emu.injectFault({ method: "conversations.replies", kind: "500" });
    const read = await paced.readThread({ channel: CHANNEL, threadTs: ts ?? "", limit: 10 });
    expect(read.map((m) => m.text)).toEqual(["m0"]);
    expect(emu.calls("conversations.replies")).toHaveLength(2);
  }, 15_000);
});

describe("Slack emulator rate-limit overrides", () => {
  test("`null` switches a method's default limit off", async () => {
    const emu = await emulator({ "reactions.add": null });
    const messages = await postMany(emu, 60);
    const raw = chatFor(emu);
    // Above the default reactions.add limit (50/min), all at once.
    await Promise.all(messages.map((ts) => raw.addReaction({ channel: CHANNEL, ts, name: "eyes" })));
    expect(emu.stats().rateLimited).toBe(0);
    for (const ts of messages) expect(emu.reactions(CHANNEL, ts)).toHaveLength(1);
  });
});
