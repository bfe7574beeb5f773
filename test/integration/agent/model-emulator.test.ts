// The scripted model emulator, driven through the real openai SDK and raw HTTP: streaming with
// split tool-call arguments and usage, non-streaming, request validation like the real API, faults.
import { afterEach, describe, expect, test } from "@jest/globals";
import { BadRequestError, OpenAI, RateLimitError, type APIError } from "openai";
import { startModelEmulator, type ModelEmulator, type Script } from "../../emulators/model/index.js";

let emulator: ModelEmulator | undefined;
afterEach(async () => {
  await emulator?.close();
  emulator = undefined;
});

async function start(script: Script, apiKey = "sk-test") {
  emulator = await startModelEmulator({ script, apiKey });
  return new OpenAI({ baseURL: emulator.baseUrl, apiKey, maxRetries: 0 });
}

const user = [{ role: "user" as const, content: "hi" }];
const shellTool = {
  type: "function" as const,
  function: {
    name: "shell",
    description: "run",
    parameters: {
      type: "object",
      properties: { command: { type: "array", items: { type: "string" } } },
      required: ["command"],
    },
  },
};

async function rawStream(baseUrl: string, body: unknown): Promise<string[]> {
  const response = await fetch(`${baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sk-test" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => l.slice(6));
}

describe("model emulator", () => {
  test("streams content and tool calls with arguments split over several chunks, and usage when asked", async () => {
    const client = await start([
      {
        content: "Running the tests now.",
        toolCalls: [{ id: "call_1", name: "shell", arguments: { command: ["npm", "test"] } }],
      },
      { content: "again" },
    ]);
    const stream = await client.chat.completions.create({
      model: "m",
      messages: user,
      tools: [shellTool],
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = "";
    let args = "";
    let argChunks = 0;
    let finish: string | null = null;
    let usage: unknown = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      content += choice?.delta.content ?? "";
      for (const call of choice?.delta.tool_calls ?? []) {
        if (call.function?.arguments) {
          args += call.function.arguments;
          argChunks++;
        }
      }
      finish = choice?.finish_reason ?? finish;
    }
    expect(content).toBe("Running the tests now.");
    expect(JSON.parse(args)).toEqual({ command: ["npm", "test"] });
    expect(argChunks).toBeGreaterThan(1);
    expect(finish).toBe("tool_calls");
    expect(usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) });
    // Without include_usage there is no usage chunk; the stream ends with [DONE].
    const data = await rawStream(emulator!.baseUrl, { model: "m", messages: user, stream: true });
    expect(data[data.length - 1]).toBe("[DONE]");
    expect(data.some((d) => d !== "[DONE]" && "usage" in JSON.parse(d))).toBe(false);
    expect(emulator!.requests.map((r) => r.turn)).toEqual([0, 1]);
  });

  test("answers without streaming too", async () => {
    const client = await start([
      { toolCalls: [{ id: "call_9", name: "shell", arguments: '{"command":["ls"]}' }] },
    ]);
    const completion = await client.chat.completions.create({
      model: "m",
      messages: user,
      tools: [shellTool],
    });
    expect(completion.choices[0]!.message).toMatchObject({
      role: "assistant",
      content: null,
      tool_calls: [
        { id: "call_9", type: "function", function: { name: "shell", arguments: '{"command":["ls"]}' } },
      ],
    });
    expect(completion.choices[0]!.finish_reason).toBe("tool_calls");
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);
  });

  test.each([
    ["no model", { messages: user }, "model"],
    [
      "a tool message answering nothing",
      { model: "m", messages: [...user, { role: "tool", tool_call_id: "nope", content: "x" }] },
      "messages[1].tool_call_id",
    ],
    [
      "tool calls left unanswered",
      {
        model: "m",
        messages: [
          ...user,
          {
            role: "assistant",
            content: null,
            tool_calls: [{ id: "a", type: "function", function: { name: "shell", arguments: "{}" } }],
          },
          { role: "user", content: "next" },
        ],
      },
      "messages[2].role",
    ],
    [
      "a tool schema that is not an object schema",
      {
        model: "m",
        messages: user,
        tools: [{ type: "function", function: { name: "bad", parameters: { type: "string" } } }],
      },
      "tools[0].function.parameters",
    ],
    [
      "stream_options without stream",
      { model: "m", messages: user, stream_options: { include_usage: true } },
      "stream_options",
    ],
  ])("rejects %s with an OpenAI-style 400", async (_name, body, param) => {
    const client = await start(() => ({ content: "should not answer" }));
    const error = await client.chat.completions.create(body as never).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as APIError).error).toMatchObject({
      type: "invalid_request_error",
      param,
      message: expect.any(String),
    });
    expect(emulator!.requests[0]!.status).toBe(400);
  });

  test("answers the Responses API without streaming, from the same script", async () => {
    const client = await start([
      { content: "Looking.", toolCalls: [{ id: "call_r", name: "shell", arguments: { command: ["ls"] } }] },
    ]);
    const response = await client.responses.create({
      model: "m",
      input: "list the files",
      tools: [{ type: "function", name: "shell", parameters: shellTool.function.parameters, strict: false }],
    });
    expect(response.output_text).toBe("Looking.");
    expect(response.output.find((o) => o.type === "function_call")).toMatchObject({
      call_id: "call_r",
      name: "shell",
      arguments: '{"command":["ls"]}',
    });
    expect(response.usage?.total_tokens).toBeGreaterThan(0);
    await expect(client.responses.create({ model: "m", input: "x", stream: true })).rejects.toMatchObject({
      status: 400,
    });
  });

  test("checks the API key", async () => {
    await start([{ content: "x" }]);
    const wrong = new OpenAI({ baseURL: emulator!.baseUrl, apiKey: "sk-wrong", maxRetries: 0 });
    await expect(wrong.chat.completions.create({ model: "m", messages: user })).rejects.toMatchObject({
      status: 401,
    });
  });

  test("injects 429 with retry-after, a cut stream and a stall", async () => {
    const client = await start([
      { fault: { kind: "status", status: 429, retryAfterSeconds: 7 } },
      { content: "a long answer that will be cut", fault: { kind: "cut", afterChunks: 2 } },
      { content: "slow", fault: { kind: "stall", ms: 400, afterChunks: 1 } },
    ]);
    const limited = await client.chat.completions.create({ model: "m", messages: user }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(limited).toBeInstanceOf(RateLimitError);
    expect((limited as RateLimitError).headers.get("retry-after")).toBe("7");

    // The connection ends mid-stream: either the request or the body read fails, never a complete answer.
    const cutText = await fetch(`${emulator!.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-test", "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: user, stream: true }),
    })
      .then((r) => r.text())
      .catch(() => "<connection reset>");
    expect(cutText).not.toContain("[DONE]");
    expect(cutText).not.toContain('"finish_reason":"stop"');

    const started = Date.now();
    const data = await rawStream(emulator!.baseUrl, { model: "m", messages: user, stream: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
    expect(data[data.length - 1]).toBe("[DONE]");
    expect(emulator!.requests.map((r) => r.status)).toEqual([429, -1, 200]);
  });
});
