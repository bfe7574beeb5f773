// The bounded conversation: stable prefix, older outputs elided first, oldest steps dropped with a
// note restating the plan, thread messages kept, and always a well-formed request.
import { describe, expect, test } from "@jest/globals";
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { Conversation } from "../../../src/agent/builtin/context.js";
import { validateChatRequest } from "../../emulators/model/index.js";

const PREFIX: ChatCompletionMessageParam[] = [
  { role: "system", content: "system prompt" },
  { role: "user", content: "the task" },
];

function step(conversation: Conversation, i: number, outputBytes: number, args = '{"command":["ls"]}'): void {
  conversation.addStep(
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: `c${i}`, type: "function", function: { name: "shell", arguments: args } }],
    },
    [{ role: "tool", tool_call_id: `c${i}`, content: `out${i} ${"x".repeat(outputBytes)}` }],
  );
}

describe("Conversation", () => {
  test("below the watermark, the history is sent as is", () => {
    const c = new Conversation(PREFIX, { highChars: 100_000, lowChars: 50_000 });
    for (let i = 0; i < 5; i++) step(c, i, 100);
    const messages = c.messages();
    expect(messages).toHaveLength(2 + 10);
    expect(messages.slice(0, 2)).toEqual(PREFIX);
    expect(messages[3]).toEqual({ role: "tool", tool_call_id: "c0", content: `out0 ${"x".repeat(100)}` });
  });

  test("over the watermark, older outputs are elided first and recent ones stay whole", () => {
    const c = new Conversation(PREFIX, { highChars: 20_000, lowChars: 12_000, keepRecentTurns: 2 });
    for (let i = 0; i < 12; i++) step(c, i, 2_000);
    expect(c.size).toBeGreaterThan(20_000);
    const messages = c.messages();
    validateChatRequest({ model: "m", messages });
    expect(JSON.stringify(messages).length).toBeLessThanOrEqual(12_000);
    const tools = messages.filter((m) => m.role === "tool") as { content: string }[];
    // Eliding was enough: no step was dropped.
    expect(tools).toHaveLength(12);
    expect(tools[0]!.content).toContain("characters of older output elided");
    expect(tools[11]!.content).toBe(`out11 ${"x".repeat(2_000)}`);
    expect(tools[10]!.content).toBe(`out10 ${"x".repeat(2_000)}`);
  });

  test("when eliding is not enough, the oldest steps go, thread messages stay, and the plan is restated", () => {
    const c = new Conversation(PREFIX, { highChars: 10_000, lowChars: 6_000, keepRecentTurns: 2 });
    c.setPlan([{ step: "Fix the bug", status: "in_progress" }]);
    c.addUserMessage("thread: please also update the docs");
    const bigArgs = JSON.stringify({ patch: "p".repeat(3_000) });
    for (let i = 0; i < 40; i++) step(c, i, 1_500, bigArgs);
    const messages = c.messages();
    validateChatRequest({ model: "m", messages });
    expect(JSON.stringify(messages).length).toBeLessThanOrEqual(10_000);
    expect(messages.slice(0, 2)).toEqual(PREFIX);
    expect(messages[2]).toEqual({
      role: "user",
      content: expect.stringMatching(
        /^\[Context note: \d+ earlier steps were removed[^]*Your current plan:\n- \[in_progress\] Fix the bug$/,
      ),
    });
    expect(messages.some((m) => m.content === "thread: please also update the docs")).toBe(true);
    const last = messages[messages.length - 1] as { content: string };
    expect(last.content).toBe(`out39 ${"x".repeat(1_500)}`);
  });

  test("between compactions the sent history only grows at the end (stable prefix for caching)", () => {
    const c = new Conversation(PREFIX, { highChars: 50_000, lowChars: 25_000, keepRecentTurns: 2 });
    let previous: string[] = [];
    let compactions = 0;
    for (let i = 0; i < 100; i++) {
      step(c, i, 1_000);
      const now = c.messages().map((m) => JSON.stringify(m));
      const extendsPrevious = previous.every((m, k) => now[k] === m);
      if (!extendsPrevious) compactions++;
      previous = now;
    }
    // ~1 KiB per step, 25 KiB freed per compaction: a handful of compactions in 100 steps, not 100.
    expect(compactions).toBeGreaterThan(0);
    expect(compactions).toBeLessThan(10);
  });
});
