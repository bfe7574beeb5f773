// End-to-end harness: starts the real `baton bot` as a child process (`bin/baton.js bot`, compiled
// dist/) configured only by its environment, wired to the Slack, model, GitHub and Kubernetes
// emulators and a redis-server of its own (the bot's key prefix is fixed, so each test file gets a
// private Redis). The scripted model answers from the request itself (plan vs implement phase, head
// branch, follow-ups), so parallel attempts and rounds need no shared turn counter.
import { spawn, type ChildProcess } from "node:child_process";
import {
  createWriteStream,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
  type WriteStream,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startGitHubEmulator, type GitHubEmulator } from "../emulators/github/index.js";
import { startKubernetesEmulator, type KubernetesEmulator } from "../emulators/kubernetes/index.js";
import {
  startModelEmulator,
  type ChatRequestBody,
  type ModelEmulator,
  type ScriptedReply,
} from "../emulators/model/index.js";
import { startSlackEmulator, type EmulatedMessage, type SlackEmulator } from "../emulators/slack/index.js";
import { ensureDistBuilt } from "../support/build.js";
import { freePort } from "../support/free-port.js";
import { startRedisServer, type TestRedis } from "../support/redis-server.js";

export const CHANNEL = "C0E2EWIDGET";
export const REPO = "acme/widget";
export const REQUESTER = "U0REQUESTER";
export const BOT_USER = "UBATONBOT";
export const MODEL_KEY = "sk-e2e-upstream-key-0123456789";
export const GITHUB_TOKEN = "ghp_e2eEmulatedToken0123456789";

/** The fixture repository: `node test.js` fails because add() subtracts. CommonJS, so any Node runs it. */
export const FIXTURE_FILES: Record<string, string> = {
  "package.json": '{ "name": "widget", "private": true, "scripts": { "test": "node test.js" } }\n',
  "math.js": "exports.add = function add(a, b) {\n  return a - b;\n};\n",
  "test.js":
    'const { add } = require("./math.js");\nif (add(2, 3) !== 5) {\n  console.error(`add(2, 3) returned ${add(2, 3)}`);\n  process.exit(1);\n}\nconsole.log("ok");\n',
  "AGENTS.md": "# Widget\nRun the tests with `node test.js`.\n",
};

export const FIX_PATCH = [
  "*** Begin Patch",
  "*** Update File: math.js",
  "@@",
  " exports.add = function add(a, b) {",
  "-  return a - b;",
  "+  return a + b;",
  " };",
  "*** End Patch",
].join("\n");

/** A patch that leaves the test failing (attempt 1 of best-of-N). */
export const WRONG_PATCH = [
  "*** Begin Patch",
  "*** Update File: math.js",
  "@@",
  " exports.add = function add(a, b) {",
  "-  return a - b;",
  "+  return a * b;",
  " };",
  "*** End Patch",
].join("\n");

export type Phase = "plan" | "implement" | "classify";

/** What a scripted brain sees of one model request. */
export interface Turn {
  phase: Phase;
  /** Assistant messages so far in this conversation: the step number of this run's script. */
  step: number;
  /** The head branch named in the task message (`baton/t-…` or `baton/t-…-a2`). */
  headBranch: string | undefined;
  /** The first user message (request, thread, plan, follow-ups). */
  task: string;
  /** Every message's text content, joined. */
  allText: string;
  body: ChatRequestBody;
}

export type Brain = (turn: Turn) => ScriptedReply | Promise<ScriptedReply>;

function messageTexts(body: ChatRequestBody): { role: string; text: string }[] {
  const messages = Array.isArray(body.messages) ? (body.messages as Record<string, unknown>[]) : [];
  return messages.map((m) => ({
    role: String(m.role),
    text:
      typeof m.content === "string"
        ? m.content
        : Array.isArray(m.content)
          ? m.content.map((p) => String((p as { text?: unknown }).text ?? "")).join("")
          : "",
  }));
}

export function describeTurn(body: ChatRequestBody): Turn {
  const tools = Array.isArray(body.tools)
    ? (body.tools as { function?: { name?: string } }[]).map((t) => t.function?.name)
    : [];
  const phase: Phase = tools.length === 0 ? "classify" : tools.includes("submit_plan") ? "plan" : "implement";
  const texts = messageTexts(body);
  const task = texts.find((m) => m.role === "user")?.text ?? "";
  const headBranch = /\(branch (baton\/[a-z0-9-]+),/.exec(task)?.[1];
  return {
    phase,
    step: texts.filter((m) => m.role === "assistant").length,
    headBranch,
    task,
    allText: texts.map((m) => m.text).join("\n"),
    body,
  };
}

/** The plan run every test uses: run the failing test, then submit a plan. */
export function planReply(turn: Turn): ScriptedReply {
  if (turn.step === 0) return { toolCalls: [{ name: "shell", arguments: { command: ["node", "test.js"] } }] };
  return {
    toolCalls: [
      {
        name: "submit_plan",
        arguments: { summary: "Make add() add.", steps: ["Fix add in math.js", "Run node test.js"] },
      },
    ],
  };
}

/** An implement run: apply `patch`, run the test, finish. */
export function implementReply(turn: Turn, patch = FIX_PATCH, summary = "Fix add() to add"): ScriptedReply {
  switch (turn.step) {
    case 0:
      return { toolCalls: [{ name: "apply_patch", arguments: { patch } }] };
    case 1:
      return { toolCalls: [{ name: "shell", arguments: { command: ["node", "test.js"] } }] };
    default:
      return { toolCalls: [{ name: "finish", arguments: { summary } }] };
  }
}

/** Plan, fix, and "no" to the bug-report classifier. */
export const defaultBrain: Brain = (turn) => {
  if (turn.phase === "classify") return { content: "no" };
  if (turn.phase === "plan") return planReply(turn);
  return implementReply(turn);
};

export interface E2EOptions {
  executor: "kubernetes" | "local";
  brain?: Brain;
  channelMode?: "plan" | "auto";
}

export interface E2E {
  slack: SlackEmulator;
  github: GitHubEmulator;
  model: ModelEmulator;
  kubernetes?: KubernetesEmulator;
  redis: TestRedis;
  port: number;
  /** Replaces the model's brain (for the next requests). */
  setBrain(brain: Brain): void;
  /** Turns the model has answered, described. */
  turns(): Turn[];
  /** Posts as the requester (a thread reply when `threadTs` is set). */
  say(text: string, threadTs?: string): Promise<string>;
  react(ts: string, name: string, user?: string): Promise<void>;
  /** Baton's messages in a thread, oldest first. */
  botMessages(threadTs: string): EmulatedMessage[];
  waitFor<T>(
    what: string,
    fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
    timeoutMs?: number,
  ): Promise<T>;
  /** The bot's log (JSON lines), for assertions and for diagnosing a failure. */
  log(): string;
  close(): Promise<void>;
}

async function waitUntil<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  onTimeout: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${onTimeout()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function killProcessesUnder(dir: string): void {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return; // no procfs: nothing to find
  }
  for (const pid of pids) {
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) process.kill(Number(pid), "SIGKILL");
    } catch {
      // Gone meanwhile, or not ours to inspect.
    }
  }
}

function tail(text: string, lines: number): string {
  return text.split("\n").slice(-lines).join("\n");
}

export async function startE2E(options: E2EOptions): Promise<E2E> {
  const bin = await ensureDistBuilt();
  const dir = mkdtempSync(path.join(tmpdir(), "baton-e2e-"));
  const logFile = path.join(dir, "bot.log");
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const close = async () => {
    for (const fn of cleanups.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
  };
  try {
    const redis = await startRedisServer({ persistent: false });
    cleanups.push(() => redis.close());

    let brain: Brain = options.brain ?? defaultBrain;
    const turns: Turn[] = [];
    const model = await startModelEmulator({
      apiKey: MODEL_KEY,
      script: async (body) => {
        const turn = describeTurn(body);
        turns.push(turn);
        return await brain(turn);
      },
    });
    cleanups.push(() => model.close());

    const github = await startGitHubEmulator({ token: GITHUB_TOKEN });
    cleanups.push(() => github.close());
    await github.createRepo(REPO, { files: FIXTURE_FILES, defaultBranch: "main" });

    const port = await freePort();
    const slack = await startSlackEmulator({
      botUserId: BOT_USER,
      botId: "BBATONBOT",
      eventsUrl: `http://127.0.0.1:${port}/slack/events`,
    });
    cleanups.push(() => slack.close());
    slack.channel(CHANNEL, { name: "widget" });
    const requester = slack.user(REQUESTER, { name: "rita" });
    slack.user("U0REPORTER", { name: "rob" });

    let kubernetes: KubernetesEmulator | undefined;
    if (options.executor === "kubernetes") {
      // The kubelet runs `bin/baton.js agent` (dist) with the Job's env; poll fast so thread messages
      // and cancellation reach the agent quickly.
      kubernetes = await startKubernetesEmulator({
        extraEnv: { LANG: "C.UTF-8", LOG_LEVEL: "warn", BATON_AGENT_POLL_MS: "200" },
      });
      cleanups.push(() => kubernetes?.close());
    }

    const policyFile = path.join(dir, "policy.yaml");
    writeFileSync(
      policyFile,
      [
        "channels:",
        `  ${CHANNEL}:`,
        `    repo: ${REPO}`,
        `    mode: ${options.channelMode ?? "plan"}`,
        "repos:",
        `  ${REPO}:`,
        "    baseBranch: main",
        "limits:",
        "  runTimeoutMinutes: 5",
        "",
      ].join("\n"),
    );

    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: dir,
      LANG: "C.UTF-8",
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_API_URL: slack.apiUrl,
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_API_KEY: MODEL_KEY,
      BATON_MODEL: "gpt-e2e",
      GITHUB_TOKEN,
      GITHUB_API_URL: github.apiUrl,
      REDIS_URL: redis.url,
      BATON_CONFIG: policyFile,
      PORT: String(port),
      HOST: "127.0.0.1",
      BATON_RUNNER_URL: `http://127.0.0.1:${port}`,
      BATON_DATA_DIR: path.join(dir, "data"),
      BATON_EXECUTOR: options.executor,
      BATON_K8S_NAMESPACE: "baton-e2e",
      LOG_LEVEL: process.env.BATON_TEST_LOG === "debug" ? "debug" : "info",
      ...(kubernetes ? { KUBECONFIG: kubernetes.kubeconfigPath } : {}),
    };
    const out: WriteStream = createWriteStream(logFile);
    const child: ChildProcess = spawn(process.execPath, [bin, "bot"], {
      env,
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const exitPromise = new Promise<void>((resolve) =>
      child.once("exit", (code, signal) => {
        exited = { code, signal };
        resolve();
      }),
    );
    // Runs outlive a stopped bot by design (another worker re-attaches); a test leaves none behind:
    // local agents (and their tools) are the processes working inside this test's data dir.
    cleanups.push(() => killProcessesUnder(dir));
    cleanups.push(async () => {
      if (exited === undefined) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exitPromise;
        clearTimeout(timer);
      }
      out.end();
    });
    const log = () => {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return "";
      }
    };
    const diagnose = () => `--- bot log (tail) ---\n${tail(log(), 40)}`;

    await waitUntil(
      "the bot to be ready",
      async () => {
        if (exited) throw new Error(`the bot exited (${JSON.stringify(exited)})\n${diagnose()}`);
        try {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`);
          return res.status === 200;
        } catch {
          return false;
        }
      },
      30_000,
      diagnose,
    );

    return {
      slack,
      github,
      model,
      ...(kubernetes ? { kubernetes } : {}),
      redis,
      port,
      setBrain: (next) => {
        brain = next;
      },
      turns: () => [...turns],
      say: async (text, threadTs) =>
        (await requester.postMessage({ channel: CHANNEL, text, ...(threadTs ? { threadTs } : {}) })).ts,
      react: async (ts, name, user = REQUESTER) => {
        await slack.user(user).react({ channel: CHANNEL, ts, name });
      },
      botMessages: (threadTs) =>
        slack.messages(CHANNEL, threadTs).filter((m) => m.user === BOT_USER || m.botId === "BBATONBOT"),
      waitFor: (what, fn, timeoutMs = 45_000) => waitUntil(what, fn, timeoutMs, diagnose),
      log,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The text of a message and every version it had (chat.update keeps the ts, records the old text). */
export function allVersions(message: EmulatedMessage): string[] {
  return [...message.edits.map((e) => e.text), message.text];
}
