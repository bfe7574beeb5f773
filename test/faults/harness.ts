// The whole product under faults, in process: `startBot` (Slack ingress + supervisor + runner API)
// with a Config from `loadConfig`, against the Slack, model, GitHub and Kubernetes emulators, a
// private redis-server (so tests can stop and restart it) and the real compiled `baton agent`
// started by the emulated kubelet. A worker can also run as a real `baton bot --role worker` child
// process (built into dist/) that a test SIGKILLs. Helpers read every task's messages out of the Slack emulator and
// check the product-wide invariants: one status and one terminal message per task, no duplicate
// pull requests, no secret in Slack, pull requests or model requests.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { loadConfig } from "../../src/config/load.js";
import { startBot, type BotRole, type RunningBot } from "../../src/roles/bot.js";
import { startGitHubEmulator, type GitHubEmulator } from "../emulators/github/index.js";
import { startKubernetesEmulator, type KubernetesEmulator } from "../emulators/kubernetes/index.js";
import {
  startModelEmulator,
  type ChatRequestBody,
  type ModelEmulator,
  type ScriptedReply,
} from "../emulators/model/index.js";
import { startSlackEmulator, type EmulatedMessage, type SlackEmulator } from "../emulators/slack/index.js";
import { ensureBuilt, ensureDistBuilt } from "../support/build.js";
import { freePort } from "../support/free-port.js";
import { startRedisServer, type TestRedis } from "../support/redis-server.js";

export const CHANNEL = "C0FAULTS";
export const REPO = "acme/web";
export const REQUESTER = "UALICE";
export const BOT_USER = "UBATON";
export const MODEL = "gpt-test";
export const NAMESPACE = "baton-faults";

export const FIXTURE_FILES: Record<string, string> = {
  "README.md": "# web\n",
  "math.js": "export function add(a, b) {\n  return a - b;\n}\n",
};

export const FIX_PATCH = [
  "*** Begin Patch",
  "*** Update File: math.js",
  "@@",
  " export function add(a, b) {",
  "-  return a - b;",
  "+  return a + b;",
  " }",
  "*** End Patch",
].join("\n");

/** One model turn for a run: `step` counts the assistant turns already in the conversation. */
export type Turn = (input: {
  phase: "plan" | "implement";
  step: number;
  body: ChatRequestBody;
  turn: number;
}) => ScriptedReply | Promise<ScriptedReply>;

/** The default agent: fixes math.js and finishes (implement); proposes that as a plan (plan). */
export const defaultTurn: Turn = ({ phase, step }) => {
  if (phase === "plan") {
    return {
      toolCalls: [
        { name: "submit_plan", arguments: { summary: "Fix add().", steps: ["Fix add in math.js"] } },
      ],
    };
  }
  if (step === 0) return { toolCalls: [{ name: "apply_patch", arguments: { patch: FIX_PATCH } }] };
  return { toolCalls: [{ name: "finish", arguments: { summary: "Fixed add() in math.js." } }] };
};

/** An agent that first runs `sleep <seconds>` (a window to inject faults mid-run), then fixes and finishes. */
export function slowTurn(seconds: number): Turn {
  return (input) => {
    if (input.phase === "implement" && input.step === 0)
      return { toolCalls: [{ name: "shell", arguments: { command: ["sleep", String(seconds)] } }] };
    return defaultTurn({ ...input, step: input.step - 1 });
  };
}

function toolNames(body: ChatRequestBody): string[] {
  if (!Array.isArray(body.tools)) return [];
  return body.tools.map((t: unknown) => {
    const fn = (t as { function?: { name?: unknown } }).function;
    return typeof fn?.name === "string" ? fn.name : "";
  });
}

function assistantTurns(body: ChatRequestBody): number {
  if (!Array.isArray(body.messages)) return 0;
  return body.messages.filter((m: unknown) => (m as { role?: unknown }).role === "assistant").length;
}

export interface ProductOptions {
  policy?: Record<string, unknown>;
  turn?: Turn;
  /** Extra environment for the agent's container processes. */
  agentEnv?: Record<string, string>;
  /**
   * Start the first instance as Slack ingress only (role "bot", on its own port) and leave the
   * runner URL's port to a worker the test starts (`startWorkerProcess` or `startInstance`).
   */
  ingressOnly?: boolean;
}

export interface WorkerProcess {
  pid: number;
  /** SIGKILL: no shutdown, no hand-off, locks left held (like a node lost). */
  kill(): Promise<void>;
}

export interface Product {
  slack: SlackEmulator;
  model: ModelEmulator;
  github: GitHubEmulator;
  kube: KubernetesEmulator;
  redis: TestRedis;
  /** Bot/worker instances started so far (index 0 is the first). */
  instances: RunningBot[];
  port: number;
  secrets: { slackToken: string; signingSecret: string; openaiKey: string; githubToken: string };
  /** Starts another bot (in process) with the same configuration on a new port, or on the runner URL's. */
  startInstance(role: BotRole, options?: { samePort?: boolean }): Promise<RunningBot>;
  /** Starts `baton bot --role worker` as a child process on the runner URL's port. */
  startWorkerProcess(): Promise<WorkerProcess>;
  /** Posts `<@baton> text` top-level in the channel as the requester; returns the thread ts. */
  mention(text: string, threadTs?: string): Promise<string>;
  /** Baton's messages in a thread (the root excluded). */
  botMessages(threadTs: string): EmulatedMessage[];
  /** Baton's messages in a thread grouped by the kind in their metadata. */
  messagesByKind(threadTs: string): Record<string, EmulatedMessage[]>;
  /**
   * Waits until the thread holds a terminal result message, its status message shows the end and
   * Slack traffic has settled; returns the result message.
   */
  waitForResult(threadTs: string, timeoutMs?: number): Promise<EmulatedMessage>;
  /** Every run token the kubelet handed to an agent. */
  runTokens(): string[];
  /** Every secret value this product holds (bot credentials and run tokens). */
  allSecrets(): string[];
  /** Asserts the product-wide invariants for one task thread; returns its result message. */
  checkThread(threadTs: string): { status: EmulatedMessage; result: EmulatedMessage; taskId: string };
  /** Asserts no secret in any Slack message/edit/ephemeral, pull request, or model request. */
  checkNoLeaks(): void;
  close(): Promise<void>;
}

const TERMINAL_MARKERS = [
  " failed",
  "pull request #",
  "finished without changes",
  "was cancelled",
  "expired",
];
/** What a status message says once its task has ended (render.ts STATE_WORDS of final states). */
const FINAL_STATUS_WORDS = [
  "Pull request opened",
  "Finished without changes",
  "Failed",
  "Plan rejected",
  "Expired",
  "Cancelled",
];

/** Every text a Slack message ever showed (its current text, blocks and earlier versions). */
export function messageTexts(message: EmulatedMessage): string[] {
  return [
    message.text,
    JSON.stringify(message.blocks ?? []),
    ...message.edits.flatMap((e) => [e.text, JSON.stringify(e.blocks ?? [])]),
  ];
}

function metadataOf(message: EmulatedMessage): { task_id?: string; kind?: string } {
  const payload = message.metadata?.event_payload as { task_id?: unknown; kind?: unknown } | undefined;
  return {
    ...(typeof payload?.task_id === "string" ? { task_id: payload.task_id } : {}),
    ...(typeof payload?.kind === "string" ? { kind: payload.kind } : {}),
  };
}

export async function startProduct(options: ProductOptions = {}): Promise<Product> {
  const cleanups: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  };
  try {
    const dataDir = mkdtempSync(join(tmpdir(), "baton-faults-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const secrets = {
      slackToken: `xoxb-faults-${randomBytes(12).toString("hex")}`,
      signingSecret: `signing-${randomBytes(12).toString("hex")}`,
      openaiKey: `sk-faults-${randomBytes(12).toString("hex")}`,
      githubToken: `ghp_faults${randomBytes(12).toString("hex")}`,
    };

    const redis = await startRedisServer();
    cleanups.push(() => redis.close());
    const slack = await startSlackEmulator({
      botUserId: BOT_USER,
      botId: "BBATON",
      botToken: secrets.slackToken,
      signingSecret: secrets.signingSecret,
    });
    cleanups.push(() => slack.close());
    slack.channel(CHANNEL, { name: "faults" });
    slack.user(REQUESTER, { name: "alice" });

    const turn = options.turn ?? defaultTurn;
    const model = await startModelEmulator({
      apiKey: secrets.openaiKey,
      script: (body, n) => {
        const phase = toolNames(body).includes("submit_plan") ? "plan" : "implement";
        return turn({ phase, step: assistantTurns(body), body, turn: n });
      },
    });
    cleanups.push(() => model.close());

    const github = await startGitHubEmulator({ token: secrets.githubToken });
    cleanups.push(() => github.close());
    await github.createRepo(REPO, { files: FIXTURE_FILES, defaultBranch: "main" });

    const entry = await ensureBuilt();
    const kube = await startKubernetesEmulator({
      agentCommand: [process.execPath, entry],
      extraEnv: { LANG: "C.UTF-8", LOG_LEVEL: "warn", ...options.agentEnv },
    });
    cleanups.push(() => kube.close());

    const policy = {
      channels: { [CHANNEL]: { repo: REPO, mode: "auto" } },
      ...options.policy,
    };
    const policyPath = join(dataDir, "policy.yaml");
    writeFileSync(policyPath, toYaml(policy));

    const port = await freePort();
    const logLevel = process.env.BATON_TEST_LOG ?? "silent";
    const envFor = (p: number): NodeJS.ProcessEnv => ({
      SLACK_BOT_TOKEN: secrets.slackToken,
      SLACK_SIGNING_SECRET: secrets.signingSecret,
      SLACK_API_URL: slack.apiUrl,
      PORT: String(p),
      HOST: "127.0.0.1",
      REDIS_URL: redis.url,
      OPENAI_API_KEY: secrets.openaiKey,
      OPENAI_BASE_URL: model.baseUrl,
      BATON_MODEL: MODEL,
      GITHUB_TOKEN: secrets.githubToken,
      GITHUB_API_URL: github.apiUrl,
      BATON_EXECUTOR: "kubernetes",
      KUBECONFIG: kube.kubeconfigPath,
      BATON_K8S_NAMESPACE: NAMESPACE,
      BATON_AGENT_IMAGE: "ghcr.io/baton-dev/baton-agent:test",
      // Agents of every instance report to the first one's runner API (one service in a cluster).
      BATON_RUNNER_URL: `http://127.0.0.1:${port}`,
      BATON_CONFIG: policyPath,
      BATON_DATA_DIR: dataDir,
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      LOG_LEVEL: logLevel,
    });

    const instances: RunningBot[] = [];
    cleanups.push(async () => {
      for (const instance of instances) await instance.stop().catch(() => undefined);
    });
    const startInstance = async (role: BotRole, opts: { samePort?: boolean } = {}) => {
      const p = opts.samePort || (instances.length === 0 && !options.ingressOnly) ? port : await freePort();
      const instance = await startBot(loadConfig(envFor(p), "bot"), role);
      instances.push(instance);
      return instance;
    };

    const children: ChildProcess[] = [];
    cleanups.push(async () => {
      for (const child of children) {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((r) => child.once("exit", r));
          child.kill("SIGKILL");
          await exited;
        }
      }
    });
    const startWorkerProcess = async (): Promise<WorkerProcess> => {
      const bin = await ensureDistBuilt();
      const child = spawn(process.execPath, [bin, "bot", "--role", "worker"], {
        env: envFor(port),
        stdio: ["ignore", "ignore", process.env.BATON_TEST_LOG ? "inherit" : "ignore"],
      });
      children.push(child);
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`the worker process exited with ${child.exitCode}`);
          const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
          return res?.status === 200;
        },
        30_000,
        "the worker process to be ready",
      );
      return {
        pid: child.pid ?? -1,
        async kill() {
          child.kill("SIGKILL");
          await exited;
        },
      };
    };

    const first = await startInstance(options.ingressOnly ? "bot" : "all");
    slack.setEventsUrl(`http://127.0.0.1:${first.port}/slack/events`);

    const botMessages = (threadTs: string) =>
      slack.messages(CHANNEL, threadTs).filter((m) => m.ts !== threadTs && m.user === BOT_USER);
    const messagesByKind = (threadTs: string) => {
      const out: Record<string, EmulatedMessage[]> = {};
      for (const m of botMessages(threadTs)) {
        const kind = metadataOf(m).kind ?? "untagged";
        (out[kind] ??= []).push(m);
      }
      return out;
    };
    const isTerminal = (m: EmulatedMessage) => TERMINAL_MARKERS.some((marker) => m.text.includes(marker));
    const runTokens = () =>
      [...new Set(kube.containerStarts().map((s) => s.env["BATON_RUN_TOKEN"] ?? ""))].filter(Boolean);
    const allSecrets = () => [...Object.values(secrets), ...runTokens()];

    const product: Product = {
      slack,
      model,
      github,
      kube,
      redis,
      instances,
      port,
      secrets,
      startInstance,
      startWorkerProcess,
      async mention(text, threadTs) {
        const user = slack.user(REQUESTER);
        const posted = await user.postMessage({
          channel: CHANNEL,
          text: `<@${BOT_USER}> ${text}`,
          ...(threadTs ? { threadTs } : {}),
        });
        return threadTs ?? posted.ts;
      },
      botMessages,
      messagesByKind,
      async waitForResult(threadTs, timeoutMs = 60_000) {
        const started = Date.now();
        const result = await waitFor(
          () => (messagesByKind(threadTs)["result"] ?? []).find(isTerminal),
          timeoutMs,
          `a terminal result message in thread ${threadTs}`,
        );
        await waitFor(
          () =>
            (messagesByKind(threadTs)["status"] ?? []).some((m) =>
              FINAL_STATUS_WORDS.some((w) => m.text.includes(w)),
            ),
          Math.max(10_000, timeoutMs - (Date.now() - started)),
          `the status message of thread ${threadTs} showing the end`,
        );
        // Duplicates would come after this point: wait until Slack has seen no call for a while,
        // so the invariants checked next are about everything the task will ever post.
        let seen = -1;
        let quietSince = Date.now();
        await waitFor(
          () => {
            const count = slack.calls().length;
            if (count !== seen) {
              seen = count;
              quietSince = Date.now();
            }
            return Date.now() - quietSince >= 750;
          },
          30_000,
          "Slack traffic to settle",
        );
        return result;
      },
      runTokens,
      allSecrets,
      checkThread(threadTs) {
        const kinds = messagesByKind(threadTs);
        const statuses = kinds["status"] ?? [];
        const results = kinds["result"] ?? [];
        const problems: string[] = [];
        if (statuses.length !== 1) problems.push(`${statuses.length} status messages`);
        if (results.length !== 1) problems.push(`${results.length} result messages`);
        if (kinds["untagged"]) problems.push(`${kinds["untagged"].length} untagged messages`);
        const taskIds = new Set(botMessages(threadTs).map((m) => metadataOf(m).task_id));
        if (taskIds.size !== 1) problems.push(`messages of ${taskIds.size} tasks`);
        if (problems.length > 0) {
          throw new Error(
            `thread ${threadTs}: ${problems.join(", ")}:\n${botMessages(threadTs)
              .map((m) => `  [${metadataOf(m).kind}] ${m.text}`)
              .join("\n")}`,
          );
        }
        const pulls = github.pulls(REPO);
        const heads = pulls.map((p) => p.head);
        if (new Set(heads).size !== heads.length)
          throw new Error(`duplicate pull requests: ${heads.join(", ")}`);
        return { status: statuses[0]!, result: results[0]!, taskId: [...taskIds][0] ?? "" };
      },
      checkNoLeaks() {
        const secretsNow = allSecrets();
        const haystacks: { where: string; text: string }[] = [];
        for (const m of slack.messages(CHANNEL)) {
          for (const r of [m, ...slack.messages(CHANNEL, m.ts)])
            haystacks.push({ where: `slack ${r.ts}`, text: messageTexts(r).join("\n") });
        }
        for (const e of slack.ephemerals())
          haystacks.push({ where: "ephemeral", text: e.text + JSON.stringify(e.blocks ?? []) });
        for (const call of slack.calls())
          haystacks.push({ where: `slack call ${call.method}`, text: JSON.stringify(call.args) });
        for (const p of github.pulls(REPO))
          haystacks.push({ where: `PR #${p.number}`, text: [p.title, p.body, ...p.comments].join("\n") });
        for (const r of model.requests)
          haystacks.push({ where: `model request ${r.turn}`, text: JSON.stringify(r.body) });
        const leaks = haystacks.flatMap(({ where, text }) =>
          secretsNow.filter((s) => text.includes(s)).map((s) => `${where} holds ${s.slice(0, 6)}…`),
        );
        if (leaks.length > 0) throw new Error(`secrets leaked:\n${leaks.join("\n")}`);
      },
      close: closeAll,
    };
    return product;
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** An app_mention envelope for a message already in the channel, with a fixed event id (for redelivery). */
export function mentionEnvelope(ts: string, text: string): Record<string, unknown> {
  return {
    token: "emulated-verification-token",
    team_id: "TEMULATED",
    api_app_id: "AEMULATED",
    type: "event_callback",
    event_id: `Ev${randomBytes(5).toString("hex").toUpperCase()}`,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [{ team_id: "TEMULATED", user_id: BOT_USER, is_bot: true, is_enterprise_install: false }],
    event: {
      type: "app_mention",
      user: REQUESTER,
      text: `<@${BOT_USER}> ${text}`,
      ts,
      channel: CHANNEL,
      event_ts: ts,
      team: "TEMULATED",
    },
  };
}

/** Posts a plain top-level message (no mention event) so a hand-made app_mention can be delivered for it. */
export async function rootMessage(p: Product, text: string): Promise<string> {
  const posted = await p.slack.user(REQUESTER).postMessage({ channel: CHANNEL, text });
  return posted.ts;
}

/** Polls until `fn` returns something truthy (or throws after `timeoutMs`). */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  timeoutMs = 30_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
