// Socket Mode: the app connects to the emulator's WebSocket (apps.connections.open) and handles the
// same requests as over HTTP; envelopes are acknowledged only after the work is recorded.
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { eventually, startHarness, type Harness } from "./harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ socketMode: true, policy: { channels: { C0001: { repo: "acme/web" } } } });
});

afterAll(async () => {
  await h?.close();
});

test("a mention over Socket Mode becomes one task with 👀 and a status message", async () => {
  await eventually(() => h.emulator.socket.connected());
  expect(h.emulator.calls("apps.connections.open").length).toBeGreaterThan(0);
  const alice = h.emulator.user("UALICE");
  const root = await alice.postMessage({ channel: "C0001", text: "<@UBATON> fix the broken avatar upload" });
  // Delivered over the socket and acknowledged (status 200 = acked).
  expect(root.delivery.map((d) => d.status)).toEqual([200, 200]);
  await eventually(() => h.emulator.reactions("C0001", root.ts).some((r) => r.name === "eyes"), 3000);
  await h.settle();
  const tasks = await h.tasksInChannel("C0001");
  expect(tasks).toHaveLength(1);
  const id = tasks[0]?.id ?? "";
  await eventually(() =>
    h.emulator.messages("C0001", root.ts).some((m) => m.user === "UBATON" && JSON.stringify(m).includes(id)),
  );
});

test("/baton help over Socket Mode answers in the acknowledgement", async () => {
  const bob = h.emulator.user("UBOB");
  const answer = await bob.slashCommand({ channel: "C0001", text: "help" });
  expect(answer.status).toBe(200);
  expect(answer.ms).toBeLessThan(3000);
  expect(JSON.stringify(JSON.parse(answer.body))).toContain("/baton");
});

test("the app reconnects after the socket drops", async () => {
  h.emulator.socket.disconnectAll();
  await eventually(() => h.emulator.socket.connected(), 15_000);
  const carol = h.emulator.user("UCAROL");
  const msg = await carol.postMessage({ channel: "C0001", text: "<@UBATON> fix the password reset mail" });
  await h.settle();
  expect((await h.tasksInChannel("C0001")).filter((t) => t.threadTs === msg.ts)).toHaveLength(1);
}, 30_000);
