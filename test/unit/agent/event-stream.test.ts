// The event stream to the runner: sequence numbers, batching, retry while the runner is away,
// thread messages and cancellation from the answers, and giving up on a refused token.
import { describe, expect, test } from "@jest/globals";
import type { AgentEvent, PostEventsAnswer } from "../../../src/shared/agent-events.js";
import { EventStream } from "../../../src/agent/event-stream.js";
import { RunnerApiError } from "../../../src/agent/runner-client.js";

/** An in-memory runner endpoint with the real semantics: idempotent by seq, scripted failures. */
function fakeEndpoint(failures: (RunnerApiError | null)[] = []) {
  const received: AgentEvent[] = [];
  let cancelled = false;
  const messages: PostEventsAnswer["messages"] = [];
  let calls = 0;
  return {
    received,
    get calls() {
      return calls;
    },
    cancel: () => (cancelled = true),
    message: (text: string) => messages.push({ author: "U1", text, ts: `${messages.length + 1}.0` }),
    client: {
      postEvents: async (events: AgentEvent[]): Promise<PostEventsAnswer> => {
        calls++;
        const failure = failures.shift();
        if (failure) throw failure;
        for (const e of events) if (!received.some((r) => r.seq === e.seq)) received.push(e);
        return { acceptedSeq: received.length, cancelled, messages: [...messages] };
      },
    },
  };
}

const transient = () => new RunnerApiError("HTTP 503", 503, true);

describe("EventStream", () => {
  test("numbers events 1..n and delivers each once, through failures", async () => {
    const endpoint = fakeEndpoint([transient(), transient(), new RunnerApiError("network down", null, true)]);
    const stream = new EventStream({ client: endpoint.client, retryBaseMs: 5 });
    for (let i = 0; i < 250; i++) stream.emit({ type: "message", text: `m${i}` });
    expect(await stream.drain(5_000)).toBe(true);
    expect(endpoint.received.map((e) => e.seq)).toEqual(Array.from({ length: 250 }, (_v, i) => i + 1));
    expect(endpoint.received.every((e) => typeof e.at === "string")).toBe(true);
    stream.close();
  });

  test("sync picks up thread messages once each, and cancellation once", async () => {
    const endpoint = fakeEndpoint();
    let cancels = 0;
    const stream = new EventStream({ client: endpoint.client, onCancel: () => cancels++ });
    endpoint.message("first");
    await stream.sync(1_000);
    endpoint.message("second");
    await stream.sync(1_000);
    expect(stream.takeMessages().map((m) => m.text)).toEqual(["first", "second"]);
    expect(stream.takeMessages()).toEqual([]);
    endpoint.cancel();
    await stream.sync(1_000);
    await stream.sync(1_000);
    expect(stream.cancelled).toBe(true);
    expect(cancels).toBe(1);
    stream.close();
  });

  test("a heartbeat polls during silence, so a cancel arrives without new events", async () => {
    const endpoint = fakeEndpoint();
    const stream = new EventStream({ client: endpoint.client });
    stream.startHeartbeat(50);
    endpoint.cancel();
    const deadline = Date.now() + 2_000;
    while (!stream.cancelled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(stream.cancelled).toBe(true);
    stream.close();
  });

  test("a refused token (401) stops sending and reports it", async () => {
    const endpoint = fakeEndpoint([new RunnerApiError("HTTP 401", 401, false)]);
    const fatal: Error[] = [];
    const stream = new EventStream({
      client: endpoint.client,
      onFatal: (e) => fatal.push(e),
      retryBaseMs: 5,
    });
    stream.emit({ type: "run.started" });
    expect(await stream.drain(300)).toBe(false);
    expect(fatal.map((e) => e.message)).toEqual(["HTTP 401"]);
    expect(endpoint.calls).toBe(1);
    stream.close();
  });
});
