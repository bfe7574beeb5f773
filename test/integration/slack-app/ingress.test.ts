// Slack ingress end to end: signed HTTP into the real server and Bolt app, the emulator as Slack.
// Signatures, dedupe of redeliveries, robustness against bad input, health endpoints.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { signSlackRequest } from "../../support/slack-signer.js";
import { startHarness, type Harness } from "./harness.js";

let h: Harness;
let ready = true;

function url(path: string): string {
  const address = h.server?.address();
  if (!address) throw new Error("server not listening");
  return `http://127.0.0.1:${address.port}${path}`;
}

function envelope(
  event: Record<string, unknown>,
  eventId = `Ev${randomBytes(6).toString("hex").toUpperCase()}`,
) {
  return {
    token: "verification-token",
    team_id: h.emulator.teamId,
    api_app_id: h.emulator.appId,
    event: { event_ts: event.ts, ...event },
    type: "event_callback",
    event_id: eventId,
    event_time: Math.floor(Date.now() / 1000),
  };
}

async function signedPost(
  body: string | Buffer,
  contentType: string,
): Promise<{ status: number; text: string }> {
  const res = await fetch(url("/slack/events"), {
    method: "POST",
    headers: { "content-type": contentType, ...signSlackRequest(h.emulator.signingSecret, body.toString()) },
    body,
  });
  return { status: res.status, text: await res.text() };
}

beforeAll(async () => {
  h = await startHarness({
    policy: {
      access: { users: ["UALICE", "UBOB"], approvers: [], admins: ["UADMIN"] },
      channels: { C0001: { repo: "acme/web" }, C0002: { repo: "acme/api" } },
    },
    readiness: [{ name: "switch", check: async () => ready }],
  });
});

afterAll(async () => {
  await h?.close();
});

afterEach(async () => {
  await h.app.idle();
});

describe("health and routing", () => {
  test("healthz, readyz follows its checks, metrics, 404", async () => {
    expect((await fetch(url("/healthz"))).status).toBe(200);
    ready = true;
    const up = await fetch(url("/readyz"));
    expect(up.status).toBe(200);
    expect(await up.json()).toEqual({ ok: true, checks: { switch: true } });
    ready = false;
    const down = await fetch(url("/readyz"));
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ ok: false, checks: { switch: false } });
    ready = true;
    const metrics = await fetch(url("/metrics"));
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain("baton_ack_latency_seconds");
    const missing = await fetch(url("/nope"));
    expect(missing.status).toBe(404);
    expect(await missing.text()).not.toMatch(/at .*\.(js|ts):\d+/);
  });
});

describe("signature checks", () => {
  test("a forged signature, a stale and a future timestamp get 401 and cause no Slack call", async () => {
    const event = envelope({
      type: "app_mention",
      channel: "C0001",
      user: "UALICE",
      ts: "1700000000.000001",
      text: "<@UBATON> fix it",
    });
    const callsBefore = h.emulator.calls().length;
    const now = Math.floor(Date.now() / 1000);
    const forged = await h.emulator.deliver(event, { kind: "event", signature: "v0=" + "0".repeat(64) });
    const stale = await h.emulator.deliver(event, { kind: "event", timestamp: now - 301 });
    const future = await h.emulator.deliver(event, { kind: "event", timestamp: now + 301 });
    expect([forged.status, stale.status, future.status]).toEqual([401, 401, 401]);
    const unsigned = await fetch(url("/slack/events"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(event),
    });
    expect(unsigned.status).toBe(401);
    await h.app.idle();
    expect(h.emulator.calls().length).toBe(callsBefore);
    expect(await h.tasksInChannel("C0001")).toEqual([]);
  });

  test("url_verification is answered with the challenge", async () => {
    const answer = await h.emulator.urlVerification("challenge-123");
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ challenge: "challenge-123" });
  });
});

describe("robustness", () => {
  test("malformed bodies, a 1 MB body and unknown event types never crash the app", async () => {
    expect((await signedPost("{not json", "application/json")).status).toBe(400);
    expect((await signedPost("a=b&c=d", "application/x-www-form-urlencoded")).status).toBe(400);
    expect((await signedPost("payload=%7Bbroken", "application/x-www-form-urlencoded")).status).toBe(400);
    expect((await signedPost("[1,2,3]", "application/json")).status).toBe(400);

    // Announced oversize body: refused without reading it.
    const big = Buffer.alloc(1024 * 1024 + 1, "a");
    expect((await signedPost(big, "application/json")).status).toBe(413);
    // Streamed (chunked, no Content-Length): refused once it passes the limit.
    const chunked = await new Promise<number>((resolve, reject) => {
      const address = h.server?.address();
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port: address?.port,
          path: "/slack/events",
          method: "POST",
          headers: { "content-type": "application/json" },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 20; i++) req.write(Buffer.alloc(64 * 1024, "b"));
      req.end();
    });
    expect(chunked).toBe(413);

    const unknown = await h.emulator.deliver(
      envelope({ type: "emoji_changed", subtype: "add", name: "party" }),
      { kind: "event" },
    );
    expect(unknown.status).toBe(200);
    const weird = await h.emulator.deliver(
      { type: "event_callback", event_id: "EvWEIRD", event: { type: "app_mention" } },
      { kind: "event" },
    );
    expect(weird.status).toBe(200);
    const unknownAction = await h.emulator.deliver(
      {
        type: "block_actions",
        user: { id: "UALICE" },
        actions: [{ action_id: "something_else", value: "x" }],
      },
      { kind: "interactive" },
    );
    expect(unknownAction.status).toBe(200);

    // Still serving: a real mention becomes a task.
    const alice = h.emulator.user("UALICE");
    await alice.postMessage({ channel: "C0002", text: "<@UBATON> fix the footer alignment" });
    await h.app.idle();
    expect(await h.tasksInChannel("C0002")).toHaveLength(1);
    expect((await fetch(url("/healthz"))).status).toBe(200);
  });
});

describe("dedupe", () => {
  test("the same event delivered four times, one retry while the first is in flight, makes one task", async () => {
    const alice = h.emulator.user("UALICE");
    const root = await alice.postMessage({
      channel: "C0001",
      text: "The checkout button does nothing on Safari",
    });
    await h.app.idle();
    const ts = `${Math.floor(Date.now() / 1000)}.777777`;
    const event = envelope(
      {
        type: "app_mention",
        channel: "C0001",
        user: "UALICE",
        ts,
        thread_ts: root.ts,
        text: "<@UBATON> please fix this",
      },
      "EvDUPLICATE1",
    );
    // The thread read on the ack path is slow, so the retries land while the first delivery is
    // handled and all of them reach the same point at about the same time.
    h.emulator.injectFault({ method: "conversations.replies", kind: "delay", delayMs: 600, times: 3 });
    const first = h.emulator.deliver(event, { kind: "event" });
    await new Promise((r) => setTimeout(r, 100));
    const retries = await Promise.all([
      h.emulator.deliver(event, { kind: "event", retryNum: 1, retryReason: "http_timeout" }),
      h.emulator.deliver(event, { kind: "event", retryNum: 2, retryReason: "http_timeout" }),
    ]);
    expect(retries.map((r) => r.status)).toEqual([200, 200]);
    expect((await first).status).toBe(200);
    expect(
      (await h.emulator.deliver(event, { kind: "event", retryNum: 3, retryReason: "http_error" })).status,
    ).toBe(200);
    // The same message as a `message` event (another event id) is the same request too.
    const asMessage = envelope({
      type: "message",
      channel: "C0001",
      user: "UALICE",
      ts,
      thread_ts: root.ts,
      text: "<@UBATON> please fix this",
    });
    expect((await h.emulator.deliver(asMessage, { kind: "event" })).status).toBe(200);
    await h.app.idle();
    const tasks = (await h.tasksInChannel("C0001")).filter((t) => t.threadTs === root.ts);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.triggerTs).toBe(ts);
    expect(
      h.runEffects.filter((r) => r.taskId === tasks[0]?.id && r.effect.type === "start_runs"),
    ).toHaveLength(1);
  });

  test("eight simultaneous deliveries of one mention make one task", async () => {
    const ts = `${Math.floor(Date.now() / 1000)}.555555`;
    const event = envelope(
      {
        type: "app_mention",
        channel: "C0001",
        user: "UBOB",
        ts,
        text: "<@UBATON> fix the cookie banner repo=acme/web",
      },
      "EvCONCURRENT1",
    );
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => h.emulator.deliver(event, { kind: "event", retryNum: i })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    await h.app.idle();
    expect((await h.tasksInChannel("C0001")).filter((t) => t.triggerTs === ts)).toHaveLength(1);
  });

  test("a failure before the task is stored answers 5xx and the retry does the work", async () => {
    const ts = `${Math.floor(Date.now() / 1000)}.888888`;
    const event = envelope(
      {
        type: "app_mention",
        channel: "C0002",
        user: "UBOB",
        ts,
        text: "<@UBATON> fix the typo in the README",
      },
      "EvFAILONCE1",
    );
    const before = (await h.tasksInChannel("C0002")).length;
    // The store fails once, as when Redis is briefly away.
    const original = h.store.create.bind(h.store);
    let failures = 1;
    h.store.create = async (task) => {
      if (failures-- > 0) throw new Error("redis unavailable");
      return original(task);
    };
    try {
      const failed = await h.emulator.deliver(event, { kind: "event" });
      expect(failed.status).toBe(500);
      expect(failed.body).not.toMatch(/redis unavailable|at .*:\d+/);
      const retried = await h.emulator.deliver(event, {
        kind: "event",
        retryNum: 1,
        retryReason: "http_error",
      });
      expect(retried.status).toBe(200);
    } finally {
      h.store.create = original;
    }
    await h.app.idle();
    const tasks = await h.tasksInChannel("C0002");
    expect(tasks.length).toBe(before + 1);
    expect(tasks.filter((t) => t.triggerTs === ts)).toHaveLength(1);
  });
  test("a failure after the task is stored answers 5xx and the retry resumes that task, not a second one", async () => {
    const ts = `${Math.floor(Date.now() / 1000)}.999999`;
    const event = envelope(
      { type: "app_mention", channel: "C0002", user: "UBOB", ts, text: "<@UBATON> fix the broken favicon" },
      "EvFAILSTART1",
    );
    const original = h.store.update.bind(h.store);
    let failures = 1;
    h.store.update = async (task) => {
      if (failures-- > 0) throw new Error("redis unavailable");
      return original(task);
    };
    try {
      expect((await h.emulator.deliver(event, { kind: "event" })).status).toBe(500);
      expect((await h.emulator.deliver(event, { kind: "event", retryNum: 1 })).status).toBe(200);
    } finally {
      h.store.update = original;
    }
    await h.app.idle();
    const tasks = (await h.tasksInChannel("C0002")).filter((t) => t.triggerTs === ts);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.state).toBe("planning");
    expect(
      h.runEffects.filter((r) => r.taskId === tasks[0]?.id && r.effect.type === "start_runs"),
    ).toHaveLength(1);
  });
});
