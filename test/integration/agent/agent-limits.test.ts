// The agent's guarantees under pressure: no secret reaches a tool, huge outputs reach the model as
// at most 10 KiB, the context stays bounded over 200 steps, and model faults are retried within
// limits and then end the run with a clear run.failed.
import { afterEach, describe, expect, test } from "@jest/globals";
import type { ScriptedReply } from "../../emulators/model/index.js";
import {
  OTHER_SECRET,
  TOKEN,
  createFixtureRepo,
  lastToolOutput,
  messagesOf,
  startSession,
  type Fixture,
  type Session,
} from "./harness.js";

let fixture: Fixture | undefined;
let session: Session | undefined;

afterEach(async () => {
  await session?.close();
  fixture?.cleanup();
  session = undefined;
  fixture = undefined;
});

const plan = (summary = "done"): ScriptedReply => ({
  toolCalls: [{ name: "submit_plan", arguments: { summary, steps: ["one"] } }],
});
const shell = (...command: string[]): ScriptedReply => ({
  toolCalls: [{ name: "shell", arguments: { command } }],
});

describe("baton agent limits and secrets", () => {
  test("`shell [env]` shows no secret, and a 10 MB output reaches the model as at most 10 KiB", async () => {
    fixture = createFixtureRepo();
    session = await startSession({
      fixture,
      phase: "plan",
      script: [
        shell("env"),
        shell("sh", "-c", "head -c 10485760 /dev/zero | tr '\\000' a; echo; echo THE-END"),
        // The agent's own initial environment, as any same-user process can read it.
        shell(
          "sh",
          "-c",
          "tr '\\000' '\\n' < /proc/$PPID/environ; echo; tr '\\000' '\\n' < /proc/1/environ || true",
        ),
        plan(),
      ],
    });
    const { exitCode, stderr } = await session.run({
      SOME_PASSWORD: "hunter2-very-secret",
      BATON_EXTRA: "baton-extra-secret",
    });
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
    const { model, runner } = session;

    const envOutput = lastToolOutput(model.requests[1]!.body);
    expect(envOutput).toContain("exit code 0");
    expect(envOutput).toMatch(/^PATH=/m);
    expect(envOutput).toMatch(/^CI=1$/m);
    for (const secret of [
      TOKEN,
      OTHER_SECRET,
      "hunter2-very-secret",
      "baton-extra-secret",
      "ghp_not_for_agents",
    ]) {
      expect(envOutput).not.toContain(secret);
    }
    expect(envOutput).not.toMatch(/BATON_|OPENAI|GITHUB|PASSWORD/);
    // Not even through /proc: the agent re-executed itself without the token in its environment.
    const procOutput = lastToolOutput(model.requests[3]!.body);
    expect(procOutput).toMatch(/BATON_RUNNER_URL=/);
    expect(procOutput).not.toContain(TOKEN);
    // Nothing the agent sent anywhere holds the token either.
    expect(JSON.stringify(runner.events)).not.toContain(TOKEN);
    expect(JSON.stringify(model.requests.map((r) => r.body))).not.toContain(TOKEN);

    const big = lastToolOutput(model.requests[2]!.body);
    expect(Buffer.byteLength(big, "utf8")).toBeLessThanOrEqual(10 * 1024);
    expect(big).toMatch(/\[… \d+ bytes left out …\]/);
    expect(big.trimEnd().endsWith("THE-END")).toBe(true);
    expect(big).toContain("full output (10485769 bytes)");
    const finished = runner.events.filter((e) => e.type === "command.finished");
    expect(
      finished.map((e) => (e.type === "command.finished" ? e.outputTail.length : -1)).every((n) => n <= 2048),
    ).toBe(true);
  });

  test("over a 200-step session the model input stays bounded and the prefix stable", async () => {
    fixture = createFixtureRepo();
    const STEPS = 200;
    session = await startSession({
      fixture,
      phase: "plan",
      spec: { limits: { maxSteps: STEPS + 5, maxTokens: 1_000_000_000, wallClockMs: 300_000 } },
      // Each step reads ~8 KiB; append-only history would grow by that much every turn.
      script: (_req, turn) =>
        turn < STEPS
          ? {
              toolCalls: [
                {
                  name: "shell",
                  arguments: {
                    command: [
                      "sh",
                      "-c",
                      `head -c 8000 /dev/zero | tr '\\000' ${String.fromCharCode(97 + (turn % 26))}`,
                    ],
                  },
                },
              ],
            }
          : plan("bounded"),
    });
    const { exitCode, stderr } = await session.run({ BATON_AGENT_CONTEXT_CHARS: "80000" }, 240_000);
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
    const { requests } = session.model;
    expect(requests).toHaveLength(STEPS + 1);
    expect(requests.every((r) => r.status === 200)).toBe(true);
    const sizes = requests.map((r) => r.bytes);
    // Bounded: no request grows past the configured budget (plus one step of slack).
    expect(Math.max(...sizes)).toBeLessThan(80_000 + 12_000);
    // Compared with append-only history (each step adds what steps 1→2 added), at most half the input.
    const perStep = sizes[2]! - sizes[1]!;
    const appendOnly = sizes.reduce((sum, _s, i) => sum + sizes[0]! + i * perStep, 0);
    const actual = sizes.reduce((a, b) => a + b, 0);
    expect(perStep).toBeGreaterThan(7_000);
    expect(actual / appendOnly).toBeLessThan(0.5);
    // The system prompt and task never change (prompt caching).
    const prefix = JSON.stringify(messagesOf(requests[0]!.body).slice(0, 2));
    expect(requests.every((r) => JSON.stringify(messagesOf(r.body).slice(0, 2)) === prefix)).toBe(true);
    // The most recent output is always complete.
    const lastChar = String.fromCharCode(97 + ((STEPS - 1) % 26));
    expect(lastToolOutput(requests[STEPS]!.body).includes(lastChar.repeat(8000))).toBe(true);
  }, 300_000);

  test("429 (with retry-after), 500, a cut stream and a stalled stream are retried and the run succeeds", async () => {
    fixture = createFixtureRepo();
    session = await startSession({
      fixture,
      phase: "plan",
      script: [
        { fault: { kind: "status", status: 429, retryAfterSeconds: 0 } },
        { fault: { kind: "status", status: 500 } },
        { ...plan("after a cut"), fault: { kind: "cut", afterChunks: 3 } },
        { ...plan("after a stall"), fault: { kind: "stall", ms: 3_000, afterChunks: 2 } },
        plan("finally"),
      ],
    });
    const { exitCode, stderr } = await session.run({
      BATON_AGENT_MODEL_IDLE_TIMEOUT_MS: "400",
      BATON_AGENT_MAX_MODEL_ATTEMPTS: "6",
    });
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
    expect(session.model.requests.map((r) => r.status)).toEqual([429, 500, -1, 200, 200]);
    expect(session.runner.result).toMatchObject({ outcome: "plan", summary: "finally" });
  });

  test("a model that keeps failing ends the run with run.failed model_unavailable", async () => {
    fixture = createFixtureRepo();
    session = await startSession({
      fixture,
      phase: "plan",
      script: () => ({ fault: { kind: "status", status: 503 } }),
    });
    const { exitCode } = await session.run({ BATON_AGENT_MAX_MODEL_ATTEMPTS: "3" });
    expect(exitCode).toBe(1);
    expect(session.model.requests).toHaveLength(3);
    expect(session.runner.result).toBeNull();
    const last = session.runner.events[session.runner.events.length - 1];
    expect(last).toMatchObject({
      type: "run.failed",
      code: "model_unavailable",
      retryable: true,
      message: expect.stringContaining("after 3 attempts"),
    });
  });

  test("a budget refusal from the gateway ends the run cleanly with budget_exhausted, without retrying", async () => {
    fixture = createFixtureRepo();
    session = await startSession({
      fixture,
      phase: "implement",
      script: [
        shell("node", "test.js"),
        {
          fault: {
            kind: "status",
            status: 429,
            body: {
              error: {
                type: "budget_exhausted",
                code: "budget_exhausted",
                message: "run token budget spent",
                param: null,
              },
            },
          },
        },
      ],
    });
    const { exitCode } = await session.run();
    expect(exitCode).toBe(1);
    expect(session.model.requests).toHaveLength(2);
    expect(session.runner.bundle).toBeNull();
    expect(session.runner.events[session.runner.events.length - 1]).toMatchObject({
      type: "run.failed",
      code: "budget_exhausted",
      retryable: false,
    });
  });

  test("the step limit ends a run that never finishes", async () => {
    fixture = createFixtureRepo();
    session = await startSession({
      fixture,
      phase: "plan",
      spec: { limits: { maxSteps: 3, maxTokens: 1_000_000, wallClockMs: 60_000 } },
      script: () => shell("true"),
    });
    const { exitCode } = await session.run();
    expect(exitCode).toBe(1);
    expect(session.model.requests).toHaveLength(3);
    expect(session.runner.events[session.runner.events.length - 1]).toMatchObject({
      type: "run.failed",
      code: "step_limit",
    });
  });

  test("the wall clock ends a run whose command outlives it, killing the command", async () => {
    fixture = createFixtureRepo();
    session = await startSession({
      fixture,
      phase: "plan",
      spec: { limits: { maxSteps: 10, maxTokens: 1_000_000, wallClockMs: 2_500 } },
      script: () => shell("sleep", "30"),
    });
    const started = Date.now();
    const { exitCode } = await session.run({}, 20_000);
    expect(exitCode).toBe(1);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(session.runner.events[session.runner.events.length - 1]).toMatchObject({
      type: "run.failed",
      code: "timeout",
    });
    expect(session.runner.events.find((e) => e.type === "command.finished")).toMatchObject({
      argv: ["sleep", "30"],
      exitCode: null,
      timedOut: true,
    });
  });

  test("the token limit ends the run once the usage reported by the model reaches it", async () => {
    fixture = createFixtureRepo();
    session = await startSession({
      fixture,
      phase: "plan",
      spec: { limits: { maxSteps: 50, maxTokens: 25_000, wallClockMs: 60_000 } },
      script: () => ({ ...shell("true"), usage: { prompt_tokens: 10_000, completion_tokens: 100 } }),
    });
    const { exitCode } = await session.run();
    expect(exitCode).toBe(1);
    expect(session.model.requests).toHaveLength(3);
    const usage = session.runner.events.filter((e) => e.type === "usage");
    expect(usage).toEqual(
      [1, 2, 3].map(() =>
        expect.objectContaining({ promptTokens: 10_000, completionTokens: 100, cachedTokens: 0 }),
      ),
    );
    expect(session.runner.events[session.runner.events.length - 1]).toMatchObject({
      type: "run.failed",
      code: "token_limit",
    });
  });
});
