// B6 (tool outputs of 1 KB … 100 MB reach the model bounded) and B7 (input over a 200-step run vs
// append-only history): the real `baton agent` process against the model emulator and the fake runner.
import type { ScriptedReply } from "../test/emulators/model/index.js";
import {
  createFixtureRepo,
  messagesOf,
  startSession,
  type LooseMessage,
} from "../test/integration/agent/harness.js";
import { DEFAULT_TUNING } from "../src/agent/engine.js";
import {
  MiB,
  rssOf,
  round,
  type BenchContext,
  type BenchOutcome,
  type Invariant,
  type Row,
} from "./lib/report.js";

const KiB = 1024;
const MODEL_OUTPUT_CAP = 10 * KiB;

const plan = (): ScriptedReply => ({
  toolCalls: [{ name: "submit_plan", arguments: { summary: "done", steps: ["one"] } }],
});
/** A shell step printing `bytes` bytes of one letter, then a marker line. */
const output = (bytes: number, letter: string): ScriptedReply => ({
  toolCalls: [
    {
      name: "shell",
      arguments: {
        command: ["sh", "-c", `head -c ${bytes} /dev/zero | tr '\\000' ${letter}; echo; echo END-OF-OUTPUT`],
      },
    },
  ],
});

interface AgentRun {
  requests: { bytes: number; messages: LooseMessage[] }[];
  peakRss: number;
  exitCode: number | null;
  stderr: string;
}

async function runAgent(
  script: ScriptedReply[],
  env: Record<string, string> = {},
  timeoutMs = 240_000,
): Promise<AgentRun> {
  const fixture = createFixtureRepo();
  const steps = script.length + 5;
  const session = await startSession({
    fixture,
    phase: "plan",
    script,
    spec: { limits: { maxSteps: steps, maxTokens: 1_000_000_000, wallClockMs: timeoutMs } },
  });
  let peakRss = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await session.run({ LOG_LEVEL: "warn", ...env }, timeoutMs, (child) => {
      const pid = child.pid;
      if (pid === undefined) return;
      // Sampled often enough to see a 100 MB output being buffered (it takes seconds to produce).
      timer = setInterval(() => {
        const rss = rssOf(pid);
        if (rss !== undefined && rss > peakRss) peakRss = rss;
      }, 5);
    });
    return {
      requests: session.model.requests.map((r) => ({ bytes: r.bytes, messages: messagesOf(r.body) })),
      peakRss,
      exitCode: outcome.exitCode,
      stderr: outcome.stderr,
    };
  } finally {
    if (timer) clearInterval(timer);
    await session.close();
    fixture.cleanup();
  }
}

const toolOutputs = (messages: LooseMessage[]) =>
  messages.filter((m) => m.role === "tool").map((m) => Buffer.byteLength(String(m.content ?? ""), "utf8"));

/** B6: the same 4-step script with outputs of 1 KB (baseline), 1 MB, 10 MB and 100 MB. */
export async function benchB6(ctx: BenchContext): Promise<BenchOutcome> {
  const STEPS = 4;
  const sizes = [1 * KiB, 1 * MiB, 10 * MiB, 100 * MiB];
  const runs = new Map<number, AgentRun>();
  for (const size of sizes) {
    const script = [
      ...Array.from({ length: STEPS }, (_, i) => output(size, String.fromCharCode(97 + i))),
      plan(),
    ];
    const run = await runAgent(script);
    ctx.log(
      `B6 ${size} B outputs: ${run.requests.length} requests, peak RSS ${round(run.peakRss / MiB, 1)} MiB`,
    );
    runs.set(size, run);
  }
  const base = runs.get(sizes[0]!)!;
  const invariants: Invariant[] = [];
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  for (const size of sizes) {
    const run = runs.get(size)!;
    invariants.push({
      id: "B6",
      name: `agent run with ${size} B outputs ends cleanly`,
      ok: run.exitCode === 0 && run.requests.length === STEPS + 1,
      detail: `exit ${run.exitCode}, ${run.requests.length} requests${run.stderr ? `, stderr: ${run.stderr.slice(0, 300)}` : ""}`,
    });
    const maxOutput = Math.max(0, ...run.requests.flatMap((r) => toolOutputs(r.messages)));
    invariants.push({
      id: "B6",
      name: `≤ 10 KiB of a ${size} B tool output reaches the model`,
      ok: maxOutput <= MODEL_OUTPUT_CAP,
      detail: `largest tool message ${maxOutput} B`,
    });
    details[`size_${size}`] = {
      requestBytes: run.requests.map((r) => r.bytes),
      largestToolMessageBytes: maxOutput,
      peakRssBytes: run.peakRss,
    };
  }
  const big = runs.get(sizes[sizes.length - 1]!)!;
  // Per step: the request that carries the newest (largest) output, step for step against the baseline.
  const ratios = big.requests.map((r, i) => r.bytes / (base.requests[i]?.bytes ?? Number.NaN));
  const worst = Math.max(...ratios.slice(1));
  const worstIndex = ratios.indexOf(worst);
  rows.push({
    id: "B6",
    figure: "per-step model input, 100 MB outputs (worst step)",
    value: big.requests[worstIndex]?.bytes ?? Number.NaN,
    baseline: base.requests[worstIndex]?.bytes ?? Number.NaN,
    unit: "B",
    target: "≤ 1.1× baseline",
    pass: worst <= 1.1,
  });
  const growth = big.peakRss - base.peakRss;
  rows.push({
    id: "B6",
    figure: "agent peak RSS, 100 MB outputs",
    value: round(big.peakRss / MiB, 1),
    baseline: round(base.peakRss / MiB, 1),
    unit: "MiB",
    target: "growth < 64 MiB",
    pass: growth < 64 * MiB,
  });
  details.perStepRatios = ratios.map((r) => round(r, 3));
  return { rows, invariants, details };
}

/** Characters of messages as sent (each message's JSON plus a separator). */
const charsOf = (messages: LooseMessage[]) =>
  messages.reduce((n, m) => n + JSON.stringify(m).length + 1, 0) + 1;

/** B7: a 200-step run reading ~8 KB per step, against the append-only history of the same run. */
export async function benchB7(ctx: BenchContext): Promise<BenchOutcome> {
  const STEPS = 200;
  const script = [
    ...Array.from({ length: STEPS }, (_, i) => output(8000, String.fromCharCode(97 + (i % 26)))),
    plan(),
  ];
  const run = await runAgent(script, {}, 300_000);
  ctx.log(`B7: ${run.requests.length} requests`);
  // Append-only history: request i would carry the prefix plus every earlier step in full. Step k in
  // full is what request k+1 ends with (the newest steps are never shortened).
  const first = run.requests[0]!.messages;
  const prefixChars = charsOf(first);
  const stepChars: number[] = [];
  for (let i = 1; i < run.requests.length; i++) {
    const messages = run.requests[i]!.messages;
    let start = messages.length - 1;
    while (start > 0 && messages[start]!.role !== "assistant") start--;
    stepChars.push(charsOf(messages.slice(start)) - 1);
  }
  let appendOnly = 0;
  let history = prefixChars;
  for (let i = 0; i < run.requests.length; i++) {
    appendOnly += history;
    history += stepChars[i] ?? 0;
  }
  const sent = run.requests.map((r) => charsOf(r.messages));
  const actual = sent.reduce((a, b) => a + b, 0);
  const window = DEFAULT_TUNING.contextHighChars;
  const largest = Math.max(...sent);
  const tokens = (chars: number) => Math.round(chars / 4);
  return {
    rows: [
      {
        id: "B7",
        figure: "total input tokens, 200 steps (≈ chars/4)",
        value: tokens(actual),
        baseline: tokens(appendOnly),
        unit: "tok",
        target: "≤ 0.5× append-only",
        pass: actual <= 0.5 * appendOnly,
      },
    ],
    invariants: [
      {
        id: "B7",
        name: "200-step run ends cleanly",
        ok: run.exitCode === 0 && run.requests.length === STEPS + 1,
        detail: `exit ${run.exitCode}, ${run.requests.length} requests${run.stderr ? `, stderr: ${run.stderr.slice(0, 300)}` : ""}`,
      },
      {
        id: "B7",
        name: "no request over the context window",
        ok: largest <= window,
        detail: `largest request ${largest} chars, window ${window} chars`,
      },
    ],
    details: {
      requestChars: sent,
      appendOnlyTotalChars: appendOnly,
      actualTotalChars: actual,
      windowChars: window,
    },
  };
}
