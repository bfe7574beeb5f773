// The watcher's model classification against the scripted OpenAI-compatible server: the request
// is a valid Chat Completions call with the message as delimited data; answers map to yes / no /
// no opinion, and failures never throw past "no opinion".
import { afterEach, expect, test } from "@jest/globals";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createModelClassifier } from "../../../src/services/watcher.js";
import { freePort } from "../../support/free-port.js";
import { startModelEmulator, type ModelEmulator, type ScriptedReply } from "../../emulators/model/index.js";

let model: ModelEmulator | undefined;

afterEach(async () => {
  await model?.close();
  model = undefined;
});

async function classifierWith(replies: ScriptedReply[]) {
  model = await startModelEmulator({ script: replies, apiKey: "sk-test-classifier-key" });
  return createModelClassifier({
    baseUrl: model.baseUrl,
    apiKey: "sk-test-classifier-key",
    model: "gpt-test",
    timeoutMs: 2000,
  });
}

test("yes, no and anything else map to true, false and undefined", async () => {
  const classify = await classifierWith([{ content: "Yes" }, { content: "no." }, { content: "maybe?" }]);
  expect(await classify("TypeError: boom in checkout")).toBe(true);
  expect(await classify("lunch?")).toBe(false);
  expect(await classify("hmm")).toBeUndefined();
  const first = model?.requests[0];
  expect(first?.status).toBe(200);
  expect(first?.headers.authorization).toBe("Bearer sk-test-classifier-key");
  expect(first?.body.model).toBe("gpt-test");
  const messages = first?.body.messages as Array<{ role: string; content: string }>;
  expect(messages.map((m) => m.role)).toEqual(["system", "user"]);
  expect(messages[1]?.content).toBe("<message>\nTypeError: boom in checkout\n</message>");
});

test("model errors, a silent server and an unreachable one are no opinion, never an exception", async () => {
  const classify = await classifierWith([
    { fault: { kind: "status", status: 500 } },
    { fault: { kind: "status", status: 429, retryAfterSeconds: 1 } },
  ]);
  expect(await classify("panic: nil map")).toBeUndefined();
  expect(await classify("panic: nil map")).toBeUndefined();

  // Accepts the request and never answers: the timeout ends it.
  const silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const { port } = silent.address() as AddressInfo;
  try {
    const slow = createModelClassifier({
      baseUrl: `http://127.0.0.1:${port}/v1`,
      model: "m",
      timeoutMs: 300,
    });
    const started = Date.now();
    expect(await slow("TypeError: x")).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2000);
  } finally {
    silent.closeAllConnections();
    await new Promise((resolve) => silent.close(resolve));
  }
  const closedPort = await freePort();
  const unreachable = createModelClassifier({ baseUrl: `http://127.0.0.1:${closedPort}/v1`, model: "m" });
  expect(await unreachable("TypeError: x")).toBeUndefined();
});
