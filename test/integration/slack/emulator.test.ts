// Self-tests of the Slack Web API emulator, driven through the real @slack/web-api and
// @slack/socket-mode clients, and a plain HTTP receiver that verifies signatures.
import { afterEach, describe, expect, test } from "@jest/globals";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SocketModeClient } from "@slack/socket-mode";
import { LogLevel, WebClient } from "@slack/web-api";
import {
  startSlackEmulator,
  type SlackEmulator,
  type SlackEmulatorOptions,
} from "../../emulators/slack/index.js";
import { verifySlackSignature } from "../../support/slack-signer.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function emulator(opts: SlackEmulatorOptions = {}): Promise<SlackEmulator> {
  const emu = await startSlackEmulator(opts);
  cleanups.push(() => emu.close());
  return emu;
}

function client(emu: SlackEmulator, token = emu.botToken): WebClient {
  return new WebClient(token, {
    slackApiUrl: emu.apiUrl,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    logLevel: LogLevel.ERROR,
  });
}

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

/** A receiver standing in for the app: records and checks every signed request. */
async function receiver(
  secret: string,
  answer: (r: Received) => { status: number; body: string } = () => ({ status: 200, body: "" }),
) {
  const received: (Received & { valid: boolean })[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const valid = verifySlackSignature(secret, req.headers, body, Math.floor(Date.now() / 1000)).ok;
      received.push({ headers: req.headers, body, valid });
      const out = valid ? answer({ headers: req.headers, body }) : { status: 401, body: "bad signature" };
      res.writeHead(out.status, { "content-type": "text/plain" });
      res.end(out.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`, received };
}

async function rejection(
  p: Promise<unknown>,
): Promise<{ code?: string; data?: { error?: string }; retryAfter?: number }> {
  try {
    await p;
  } catch (error) {
    return error as { code?: string; data?: { error?: string }; retryAfter?: number };
  }
  throw new Error("expected the call to fail");
}

describe("Slack emulator: Web API", () => {
  test("auth.test checks the token", async () => {
    const emu = await emulator();
    const me = await client(emu).auth.test();
    expect(me).toMatchObject({ ok: true, user_id: emu.botUserId, team_id: emu.teamId, bot_id: emu.botId });
    const bad = await rejection(client(emu, "xoxb-wrong").auth.test());
    expect(bad.data?.error).toBe("invalid_auth");
    expect(emu.calls("auth.test").map((c) => c.error ?? "ok")).toEqual(["ok", "invalid_auth"]);
  });

  test("threads, metadata, updates with history, reactions, permalinks", async () => {
    const emu = await emulator();
    const web = client(emu);
    const alice = emu.user("UALICE", { name: "alice" });
    emu.channel("CWORK", { name: "work" });
    const { ts: rootTs } = await alice
      .postMessage({ channel: "CWORK", text: "the build is red" })
      .catch(() => ({ ts: "" }));
    // No events URL: the user's message is stored, delivery fails loudly.
    expect(rootTs).toBe("");
    const root = emu.messages("CWORK")[0]!;
    expect(root).toMatchObject({ user: "UALICE", text: "the build is red" });

    const posted = await web.chat.postMessage({
      channel: "CWORK",
      thread_ts: root.ts,
      text: "status",
      metadata: { event_type: "baton_message", event_payload: { task_id: "T-ABC123", kind: "status" } },
      unfurl_links: false,
      unfurl_media: false,
    });
    expect(posted.ok).toBe(true);
    const ts = posted.ts!;
    expect(Number(ts)).toBeGreaterThan(Number(root.ts));
    await web.chat.update({ channel: "CWORK", ts, text: "status v2" });
    expect(emu.message("CWORK", ts)).toMatchObject({
      text: "status v2",
      threadTs: root.ts,
      user: emu.botUserId,
      botId: emu.botId,
      unfurlLinks: false,
      unfurlMedia: false,
      edits: [expect.objectContaining({ text: "status" })],
    });

    const withMeta = await web.conversations.replies({
      channel: "CWORK",
      ts: root.ts,
      include_all_metadata: true,
    });
    expect(withMeta.messages?.map((m) => [m.ts, m.text])).toEqual([
      [root.ts, "the build is red"],
      [ts, "status v2"],
    ]);
    expect(withMeta.messages?.[1]?.metadata).toEqual({
      event_type: "baton_message",
      event_payload: { task_id: "T-ABC123", kind: "status" },
    });
    const withoutMeta = await web.conversations.replies({ channel: "CWORK", ts: root.ts });
    expect(withoutMeta.messages?.[1]?.metadata).toBeUndefined();

    await web.reactions.add({ channel: "CWORK", timestamp: ts, name: "white_check_mark" });
    const again = await rejection(
      web.reactions.add({ channel: "CWORK", timestamp: ts, name: "white_check_mark" }),
    );
    expect(again.data?.error).toBe("already_reacted");
    expect(emu.reactions("CWORK", ts)).toEqual([{ name: "white_check_mark", users: [emu.botUserId] }]);

    const link = await web.chat.getPermalink({ channel: "CWORK", message_ts: ts });
    expect(link.permalink).toContain(`/archives/CWORK/p${ts.replace(".", "")}?thread_ts=${root.ts}`);

    const history = await web.conversations.history({ channel: "CWORK" });
    expect(history.messages?.map((m) => m.ts)).toEqual([root.ts]);
    expect(history.messages?.[0]?.reply_count).toBe(1);
  });

  test("only the bot's own messages can be edited; triggers expire; unknown methods are refused", async () => {
    let now = 1_700_000_000_000;
    const emu = await emulator({ clock: () => now, triggerTtlMs: 3000 });
    const app = await receiver(emu.signingSecret);
    emu.setEventsUrl(app.url);
    const web = client(emu);
    const { ts } = await emu.user("UERIN").postMessage({ channel: "CEDIT", text: "mine" });
    const notMine = await rejection(web.chat.update({ channel: "CEDIT", ts, text: "hijacked" }));
    expect(notMine.data?.error).toBe("cant_update_message");
    expect(emu.message("CEDIT", ts)?.text).toBe("mine");

    await emu.user("UERIN").slashCommand({ channel: "CEDIT", text: "x" });
    const triggerId = new URLSearchParams(app.received.at(-1)!.body).get("trigger_id")!;
    now += 3001;
    const view = { type: "modal" as const, title: { type: "plain_text" as const, text: "x" }, blocks: [] };
    const expired = await rejection(web.views.open({ trigger_id: triggerId, view }));
    expect(expired.data?.error).toBe("expired_trigger_id");

    const unknown = await rejection(web.apiCall("chat.teleport", {}));
    expect(unknown.data?.error).toBe("unknown_method");
  });

  test("payload limits and unknown channels", async () => {
    const emu = await emulator({ autoCreateChannels: false });
    const web = client(emu);
    emu.channel("CLIM");
    const errorOf = async (p: Promise<unknown>) => (await rejection(p)).data?.error;
    expect(await errorOf(web.chat.postMessage({ channel: "CLIM", text: "x".repeat(40_001) }))).toBe(
      "msg_too_long",
    );
    const blocks = Array.from({ length: 51 }, () => ({ type: "divider" }));
    expect(await errorOf(web.chat.postMessage({ channel: "CLIM", text: "t", blocks }))).toBe(
      "invalid_blocks",
    );
    const longSection = [{ type: "section", text: { type: "mrkdwn", text: "y".repeat(3001) } }];
    expect(await errorOf(web.chat.postMessage({ channel: "CLIM", text: "t", blocks: longSection }))).toBe(
      "invalid_blocks",
    );
    expect(await errorOf(web.chat.postMessage({ channel: "CNOPE", text: "t" }))).toBe("channel_not_found");
    expect(await errorOf(web.chat.update({ channel: "CLIM", ts: "1.000001", text: "t" }))).toBe(
      "message_not_found",
    );
    const ok = await web.chat.postMessage({
      channel: "CLIM",
      text: "x".repeat(40_000),
      blocks: blocks.slice(1),
    });
    expect(ok.ok).toBe(true);
    expect(emu.messages("CLIM")).toHaveLength(1);
  });

  test("rate limits answer 429 with Retry-After and count ignored ones", async () => {
    const emu = await emulator({
      rateLimits: { "chat.update": { max: 3, windowMs: 60_000, scope: "workspace" } },
    });
    const web = client(emu);
    const { ts } = await web.chat.postMessage({ channel: "CRATE", text: "s" });
    for (let i = 0; i < 3; i++) await web.chat.update({ channel: "CRATE", ts: ts!, text: `s${i}` });
    const limited = await rejection(web.chat.update({ channel: "CRATE", ts: ts!, text: "s3" }));
    expect(limited.code).toBe("slack_webapi_rate_limited_error");
    expect(limited.retryAfter).toBeGreaterThanOrEqual(59);
    expect(emu.stats()).toMatchObject({ rateLimited: 1, ignoredRateLimits: 0 });
    // Calling again inside the Retry-After window is what a well-behaved client never does.
    await rejection(web.chat.update({ channel: "CRATE", ts: ts!, text: "s4" }));
    expect(emu.stats()).toMatchObject({ rateLimited: 2, ignoredRateLimits: 1 });
    expect(emu.message("CRATE", ts!)?.text).toBe("s2");
  });

  test("chat.postMessage is limited per channel", async () => {
    let now = 1_700_000_000_000;
    const emu = await emulator({
      clock: () => now,
      rateLimits: { "chat.postMessage": { max: 2, windowMs: 1000, scope: "channel" } },
    });
    const web = client(emu);
    await web.chat.postMessage({ channel: "CONE", text: "1" });
    await web.chat.postMessage({ channel: "CONE", text: "2" });
    await web.chat.postMessage({ channel: "CTWO", text: "1" });
    expect((await rejection(web.chat.postMessage({ channel: "CONE", text: "3" }))).retryAfter).toBe(1);
    now += 1000;
    await web.chat.postMessage({ channel: "CONE", text: "3" });
    expect(emu.messages("CONE").map((m) => m.text)).toEqual(["1", "2", "3"]);
    expect(emu.stats().ignoredRateLimits).toBe(0);
  });

  test("faults: 429, 500, delay and a dropped response that still posts", async () => {
    const emu = await emulator();
    const web = client(emu);
    emu.injectFault({ method: "chat.postMessage", kind: "429", retryAfter: 7 });
    expect((await rejection(web.chat.postMessage({ channel: "CF", text: "a" }))).retryAfter).toBe(7);
    emu.injectFault({ method: "chat.postMessage", kind: "500", times: 2 });
    await rejection(web.chat.postMessage({ channel: "CF", text: "b" }));
    expect(emu.calls("chat.postMessage").map((c) => c.status)).toEqual([429, 500]);
    expect(emu.stats().ignoredRateLimits).toBe(1);

    const emu2 = await emulator();
    const web2 = client(emu2);
    emu2.injectFault({ method: "chat.postMessage", kind: "drop_response" });
    const dropped = await rejection(web2.chat.postMessage({ channel: "CF", text: "lost answer" }));
    expect(dropped.code).toBe("slack_webapi_request_error");
    expect(emu2.messages("CF").map((m) => m.text)).toEqual(["lost answer"]);

    emu2.injectFault({ method: "auth.test", kind: "delay", delayMs: 200 });
    const started = Date.now();
    await web2.auth.test();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  test("pagination of conversations.replies", async () => {
    const emu = await emulator();
    const web = client(emu);
    const { ts: root } = await web.chat.postMessage({ channel: "CPAGE", text: "root" });
    for (let i = 0; i < 4; i++)
      await web.chat.postMessage({ channel: "CPAGE", thread_ts: root!, text: `r${i}` });
    const texts: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await web.conversations.replies({
        channel: "CPAGE",
        ts: root!,
        limit: 2,
        ...(cursor ? { cursor } : {}),
      });
      texts.push(...(page.messages ?? []).map((m) => m.text ?? ""));
      cursor = page.response_metadata?.next_cursor || undefined;
    } while (cursor);
    expect(texts).toEqual(["root", "r0", "r1", "r2", "r3"]);
  });

  test("users, ephemerals, home views, views.open with a trigger", async () => {
    const emu = await emulator();
    const web = client(emu);
    emu.user("UBOB", { name: "bob" });
    expect((await web.users.info({ user: "UBOB" })).user).toMatchObject({
      id: "UBOB",
      name: "bob",
      is_bot: false,
    });
    expect((await rejection(web.users.info({ user: "UNOBODY" }))).data?.error).toBe("user_not_found");
    await web.chat.postEphemeral({ channel: "CEPH", user: "UBOB", text: "only you" });
    expect(emu.ephemerals({ user: "UBOB" }).map((e) => e.text)).toEqual(["only you"]);
    await web.views.publish({ user_id: "UBOB", view: { type: "home", blocks: [{ type: "divider" }] } });
    expect(emu.homeViews("UBOB")).toEqual([{ type: "home", blocks: [{ type: "divider" }] }]);
    const badTrigger = await rejection(
      web.views.open({
        trigger_id: "nope",
        view: { type: "modal", title: { type: "plain_text", text: "x" }, blocks: [] },
      }),
    );
    expect(badTrigger.data?.error).toBe("invalid_trigger_id");
  });
});

describe("Slack emulator: acting as users", () => {
  test("messages, mentions, reactions, commands and buttons arrive signed", async () => {
    const emu = await emulator();
    const app = await receiver(emu.signingSecret);
    emu.setEventsUrl(app.url);
    const carol = emu.user("UCAROL", { name: "carol" });

    const posted = await carol.postMessage({ channel: "CUSR", text: `<@${emu.botUserId}> fix the build` });
    expect(posted.delivery.map((d) => d.status)).toEqual([200, 200]);
    const [messageEvt, mentionEvt] = app.received.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(messageEvt).toMatchObject({
      type: "event_callback",
      team_id: emu.teamId,
      event: { type: "message", ts: posted.ts, user: "UCAROL" },
    });
    expect(mentionEvt).toMatchObject({ event: { type: "app_mention", ts: posted.ts, channel: "CUSR" } });
    expect(messageEvt!.event_id).not.toBe(mentionEvt!.event_id);

    const reply = await carol.postMessage({ channel: "CUSR", threadTs: posted.ts, text: "more context" });
    expect(reply.delivery).toHaveLength(1);
    expect(JSON.parse(app.received[2]!.body).event).toMatchObject({
      thread_ts: posted.ts,
      parent_user_id: "UCAROL",
    });

    await carol.react({ channel: "CUSR", ts: posted.ts, name: "hammer_and_wrench" });
    expect(JSON.parse(app.received[3]!.body).event).toMatchObject({
      type: "reaction_added",
      reaction: "hammer_and_wrench",
      item: { type: "message", channel: "CUSR", ts: posted.ts },
      item_user: "UCAROL",
    });

    await carol.slashCommand({ channel: "CUSR", text: "help" });
    const command = new URLSearchParams(app.received[4]!.body);
    expect(app.received[4]!.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(command.get("command")).toBe("/baton");
    expect(command.get("text")).toBe("help");
    expect(command.get("user_id")).toBe("UCAROL");
    const responseUrl = command.get("response_url")!;
    await fetch(responseUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "usage" }),
    });
    expect(emu.responses()).toEqual([{ url: responseUrl, body: { text: "usage" } }]);

    const web = client(emu);
    const { ts: planTs } = await web.chat.postMessage({
      channel: "CUSR",
      thread_ts: posted.ts,
      text: "plan",
    });
    await carol.clickButton({ channel: "CUSR", messageTs: planTs!, actionId: "approve", value: "T-ABC123" });
    const click = JSON.parse(new URLSearchParams(app.received[5]!.body).get("payload")!) as Record<
      string,
      unknown
    >;
    expect(click).toMatchObject({
      type: "block_actions",
      user: { id: "UCAROL" },
      container: { message_ts: planTs, channel_id: "CUSR" },
      actions: [{ action_id: "approve", value: "T-ABC123" }],
    });
    // The trigger works once, for views.open.
    const view = { type: "modal" as const, title: { type: "plain_text" as const, text: "x" }, blocks: [] };
    await web.views.open({ trigger_id: click.trigger_id as string, view });
    expect(emu.openedViews()).toHaveLength(1);

    await carol.openHome();
    expect(JSON.parse(app.received[6]!.body).event).toMatchObject({
      type: "app_home_opened",
      user: "UCAROL",
      tab: "home",
    });
    expect(app.received.every((r) => r.valid)).toBe(true);
  });

  test("bot actors carry bot_id; the bot's own posts echo only when asked", async () => {
    const emu = await emulator({ echoBotMessages: true });
    const app = await receiver(emu.signingSecret);
    emu.setEventsUrl(app.url);
    const alerts = emu.user("UALERTS", { isBot: true, name: "alerts" });
    await alerts.postMessage({ channel: "CBOT", text: "ERROR: payments down" });
    expect(JSON.parse(app.received[0]!.body).event).toMatchObject({
      bot_id: "BALERTS",
      subtype: "bot_message",
    });
    await client(emu).chat.postMessage({ channel: "CBOT", text: "hello from baton" });
    await emu.waitFor(() => app.received.length === 2);
    expect(JSON.parse(app.received[1]!.body).event).toMatchObject({
      user: emu.botUserId,
      bot_id: emu.botId,
      text: "hello from baton",
    });
  });

  test("forged signatures, stale timestamps, retries and url_verification", async () => {
    const emu = await emulator();
    const app = await receiver(emu.signingSecret, (r) => {
      const body = JSON.parse(r.body) as { type?: string; challenge?: string };
      return body.type === "url_verification"
        ? { status: 200, body: body.challenge ?? "" }
        : { status: 200, body: "" };
    });
    emu.setEventsUrl(app.url);
    const payload = { type: "event_callback", event: { type: "message" }, event_id: "Ev1" };
    expect((await emu.deliver(payload, { signature: "v0=deadbeef" })).status).toBe(401);
    expect((await emu.deliver(payload, { timestamp: Math.floor(Date.now() / 1000) - 301 })).status).toBe(401);
    const retried = await emu.deliver(payload, { retryNum: 1, retryReason: "http_timeout" });
    expect(retried.status).toBe(200);
    expect(app.received.at(-1)?.headers["x-slack-retry-num"]).toBe("1");
    expect(app.received.at(-1)?.headers["x-slack-retry-reason"]).toBe("http_timeout");
    const challenge = await emu.urlVerification("abc123");
    expect(challenge).toMatchObject({ status: 200, body: "abc123" });
  });
});

describe("Slack emulator: Socket Mode", () => {
  test("the SDK connects with the app token and acks envelopes", async () => {
    const emu = await emulator({ socketAckTimeoutMs: 500 });
    const socket = new SocketModeClient({
      appToken: emu.appToken,
      clientOptions: { slackApiUrl: emu.apiUrl },
      logLevel: LogLevel.ERROR,
    });
    const seen: string[] = [];
    socket.on(
      "app_mention",
      async ({ ack, event }: { ack: () => Promise<void>; event: { text: string } }) => {
        seen.push(event.text);
        await ack();
      },
    );
    socket.on(
      "slash_commands",
      async ({ ack, body }: { ack: (r?: unknown) => Promise<void>; body: { text: string } }) => {
        await ack({ text: `you said ${body.text}` });
      },
    );
    await socket.start();
    cleanups.push(() => socket.disconnect());
    await emu.waitFor(() => emu.socket.connected());

    const dave = emu.user("UDAVE");
    const posted = await dave.postMessage({ channel: "CSOCK", text: `<@${emu.botUserId}> hi` });
    // No listener acks plain `message` events here, so that delivery times out (status 0).
    expect(posted.delivery[1]?.status).toBe(200);
    expect(seen).toEqual([`<@${emu.botUserId}> hi`]);
    const command = await dave.slashCommand({ channel: "CSOCK", text: "status" });
    expect(command.status).toBe(200);
    expect(JSON.parse(command.body)).toEqual({ text: "you said status" });
    expect((await rejection(client(emu).apps.connections.open())).data?.error).toBe("not_allowed_token_type");
  }, 20_000);
});
