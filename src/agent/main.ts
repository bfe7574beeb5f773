// `baton agent`: fetch the run spec, clone through the runner's git proxy, run the engine, commit,
// upload the bundle, post the result, exit. Events stream to the runner throughout. The run token is
// the only credential this process holds; it never reaches a tool, a log line or the model.
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { PlanStep } from "../shared/agent-events.js";
import { createLogger, type Logger } from "../shared/logger.js";
import type { EvidenceEntry, RunResult } from "../shared/run-result.js";
import type { RunSpec } from "../shared/run-spec.js";
import { AGENT_ENV, MAX_BUNDLE_BYTES, runnerPaths } from "../shared/runner-api.js";
import { readAgentsMd } from "./agents-md.js";
import { DEFAULT_TUNING, type EngineContext, type EngineOutcome, type EngineTuning } from "./engine.js";
import { selectEngine } from "./engines.js";
import { EventStream } from "./event-stream.js";
import {
  GitError,
  changedFiles,
  cloneWorkspace,
  commitAll,
  commitMessage,
  createBundle,
  resetToStart,
  type GitWorkspace,
} from "./git.js";
import { RunnerApiError, RunnerClient } from "./runner-client.js";
import { toolEnvironment } from "./safe-env.js";
import type { ToolHost } from "./tools/index.js";
import { reexecWithoutToken, takeTokenFromFile } from "./token-handoff.js";

/** Exit codes: 0 success (plan, changes or no change), 1 failed, 2 bad environment, 3 cancelled. */
export type AgentExitCode = 0 | 1 | 2 | 3;

const optionalInt = z.preprocess(
  (v) => (v === "" ? undefined : v),
  z.coerce.number().int().positive().optional(),
);

const AgentEnv = z.object({
  [AGENT_ENV.runnerUrl]: z
    .string({ error: "is not set: it must be the URL of the bot's runner API" })
    .url("must be the URL of the bot's runner API"),
  [AGENT_ENV.runToken]: z
    .string({ error: "is not set: it must hold this run's token" })
    .min(8, "is too short to be a run token"),
  // Tuning knobs (tests shorten them); defaults suit production.
  BATON_AGENT_MODEL_IDLE_TIMEOUT_MS: optionalInt,
  BATON_AGENT_RETRY_BASE_MS: optionalInt,
  BATON_AGENT_RETRY_MAX_DELAY_MS: optionalInt,
  BATON_AGENT_MAX_MODEL_ATTEMPTS: optionalInt,
  BATON_AGENT_CONTEXT_CHARS: optionalInt,
  BATON_AGENT_POLL_MS: optionalInt,
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

const EVENT_SYNC_TIMEOUT_MS = 5_000;
const DEFAULT_POLL_MS = 5_000;
const FINAL_DRAIN_MS = 30_000;
const OUTPUT_TAIL_FOR_EVIDENCE = 2_048;

function tuningFrom(env: z.infer<typeof AgentEnv>): EngineTuning {
  const high = env.BATON_AGENT_CONTEXT_CHARS ?? DEFAULT_TUNING.contextHighChars;
  return {
    modelIdleTimeoutMs: env.BATON_AGENT_MODEL_IDLE_TIMEOUT_MS ?? DEFAULT_TUNING.modelIdleTimeoutMs,
    retryBaseMs: env.BATON_AGENT_RETRY_BASE_MS ?? DEFAULT_TUNING.retryBaseMs,
    retryMaxDelayMs: env.BATON_AGENT_RETRY_MAX_DELAY_MS ?? DEFAULT_TUNING.retryMaxDelayMs,
    maxModelAttempts: env.BATON_AGENT_MAX_MODEL_ATTEMPTS ?? DEFAULT_TUNING.maxModelAttempts,
    contextHighChars: high,
    contextLowChars: Math.floor(high * (DEFAULT_TUNING.contextLowChars / DEFAULT_TUNING.contextHighChars)),
  };
}

/** Runs one agent run to its end; never throws. */
export async function runAgent(processEnv: NodeJS.ProcessEnv): Promise<AgentExitCode> {
  reexecWithoutToken(processEnv);
  let env: NodeJS.ProcessEnv;
  try {
    env = takeTokenFromFile(processEnv);
  } catch (error) {
    process.stderr.write(`baton agent: cannot read the run token file: ${(error as Error).message}\n`);
    return 2;
  }
  const parsed = AgentEnv.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      process.stderr.write(`baton agent: ${issue.path.join(".") || "environment"}: ${issue.message}\n`);
    }
    return 2;
  }
  const config = parsed.data;
  const token = config[AGENT_ENV.runToken];
  const runnerUrl = config[AGENT_ENV.runnerUrl].replace(/\/+$/, "");
  const redact = (text: string) => text.split(token).join("[redacted]");
  const log = createLogger({ level: config.LOG_LEVEL, redact, base: { app: "baton-agent" } });
  const client = new RunnerClient({ baseUrl: runnerUrl, token });

  let spec: RunSpec;
  try {
    spec = await client.getRunSpec();
  } catch (error) {
    log.error({ err: error }, "could not fetch the run spec");
    return 1;
  }
  const runLog = log.child({ runId: spec.runId, taskId: spec.taskId, phase: spec.phase });
  const run = new AgentRun(spec, client, token, runnerUrl, tuningFrom(config), runLog, redact, env);
  return await run.execute(config.BATON_AGENT_POLL_MS ?? DEFAULT_POLL_MS);
}

class AgentRun {
  private readonly abort = new AbortController();
  private readonly events: EventStream;
  private readonly evidence: EvidenceEntry[] = [];
  private readonly started = Date.now();
  private readonly deadline: number;
  private readonly toolEnv: NodeJS.ProcessEnv;
  private terminatedBy: NodeJS.Signals | null = null;

  constructor(
    private readonly spec: RunSpec,
    private readonly client: RunnerClient,
    private readonly token: string,
    private readonly runnerUrl: string,
    private readonly tuning: EngineTuning,
    private readonly log: Logger,
    private readonly redact: (text: string) => string,
    agentEnv: NodeJS.ProcessEnv,
  ) {
    this.deadline = this.started + spec.limits.wallClockMs;
    this.events = new EventStream({
      client,
      onCancel: () => {
        this.log.info("the run was cancelled");
        this.abort.abort();
      },
      onFatal: (error) => {
        // The runner no longer accepts this run (token ended): stop working for nobody.
        this.log.error({ err: error }, "the runner refused events; stopping");
        this.abort.abort();
      },
    });
    this.toolEnv = toolEnvironment(agentEnv);
  }

  async execute(pollMs: number): Promise<AgentExitCode> {
    const wallClock = setTimeout(() => this.abort.abort(), this.spec.limits.wallClockMs);
    wallClock.unref();
    // Pod deletion or the local executor's kill: stop the tools' process groups (they run detached,
    // so a signal to our group does not reach them) and report, instead of dying mid-step.
    const onSignal = (signal: NodeJS.Signals) => {
      this.log.warn({ signal }, "stopping on signal");
      this.terminatedBy = signal;
      this.abort.abort();
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    this.events.emit({ type: "run.started" });
    this.events.startHeartbeat(pollMs);
    try {
      return await this.phases();
    } catch (error) {
      const message = this.redact(error instanceof Error ? error.message : String(error));
      const code =
        error instanceof GitError
          ? "git_failed"
          : error instanceof RunnerApiError
            ? "runner_unreachable"
            : "infrastructure";
      this.log.error({ err: error, code }, "the run failed");
      return await this.fail(code, message, true);
    } finally {
      clearTimeout(wallClock);
      process.removeListener("SIGTERM", onSignal);
      process.removeListener("SIGINT", onSignal);
      this.events.close();
    }
  }

  private async phases(): Promise<AgentExitCode> {
    const { spec } = this;
    const engine = selectEngine(spec.engine);
    if (engine === undefined)
      return await this.fail(
        "unknown_engine",
        `this agent has no engine named ${JSON.stringify(spec.engine)}`,
        false,
      );

    const repoDir = path.resolve(process.cwd(), "repo");
    if (existsSync(repoDir) && readdirSync(repoDir).length > 0) {
      return await this.fail("infrastructure", `the workspace folder ${repoDir} is not empty`, false);
    }
    mkdirSync(path.dirname(repoDir), { recursive: true });
    const ws = await cloneWorkspace({
      cloneUrl: spec.repository.cloneUrl,
      token: this.token,
      baseBranch: spec.repository.baseBranch,
      headBranch: spec.repository.headBranch,
      headExists: spec.repository.headExists,
      dir: repoDir,
      env: this.toolEnv,
      signal: this.abort.signal,
    });
    this.log.info({ baseSha: ws.baseSha, startSha: ws.startSha }, "workspace ready");

    const context: EngineContext = {
      spec,
      workspace: ws.dir,
      agentsMd: readAgentsMd(ws.dir),
      host: this.toolHost(ws),
      emit: (event) => this.events.emit(event),
      sync: () => this.events.sync(EVENT_SYNC_TIMEOUT_MS),
      takeMessages: () => this.events.takeMessages(),
      isCancelled: () => this.events.cancelled || this.terminatedBy !== null,
      llm: { baseUrl: `${this.runnerUrl}${runnerPaths.llm}`, apiKey: this.token },
      deadline: this.deadline,
      signal: this.abort.signal,
      tuning: this.tuning,
      log: (message, fields) => this.log.info(fields ?? {}, message),
    };
    const outcome = await engine.run(context);
    return await this.conclude(outcome, ws);
  }

  private toolHost(ws: GitWorkspace): ToolHost {
    return {
      workspace: ws.dir,
      outputDir: path.join(ws.dir, ".git", "baton-output"),
      env: this.toolEnv,
      signal: this.abort.signal,
      remainingMs: () => Math.max(0, this.deadline - Date.now()),
      commandFinished: (entry) => {
        this.evidence.push({
          argv: entry.argv.map(this.redact),
          exitCode: entry.exitCode,
          durationMs: entry.durationMs,
          ...(entry.timedOut ? { timedOut: true } : {}),
        });
        this.events.emit({
          type: "command.finished",
          argv: entry.argv.map(this.redact),
          exitCode: entry.exitCode,
          durationMs: entry.durationMs,
          outputTail: this.redact(entry.outputTail.slice(-OUTPUT_TAIL_FOR_EVIDENCE)),
          ...(entry.timedOut ? { timedOut: true } : {}),
        });
      },
      filesChanged: (paths) => {
        this.events.emit({ type: "files.changed", paths });
      },
      planUpdated: (steps: PlanStep[]) => this.events.emit({ type: "plan.updated", steps }),
    };
  }

  private async conclude(outcome: EngineOutcome, ws: GitWorkspace): Promise<AgentExitCode> {
    const { spec } = this;
    if (outcome.kind === "cancelled") {
      if (spec.phase === "plan") await resetToStart(ws).catch(() => undefined);
      if (this.terminatedBy !== null && !this.events.cancelled) {
        return await this.fail("terminated", `the agent process was stopped (${this.terminatedBy})`, true);
      }
      return await this.fail("cancelled", "the run was cancelled", false, 3);
    }
    if (outcome.kind === "failed") {
      if (spec.phase === "plan") await resetToStart(ws).catch(() => undefined);
      return await this.fail(outcome.code, outcome.message, outcome.retryable);
    }
    if (outcome.kind === "plan") {
      if (spec.phase !== "plan")
        return await this.fail("infrastructure", "the engine returned a plan in an implement run", false);
      // Whatever the investigation touched (builds, caches, even commits) does not outlive the run.
      await resetToStart(ws);
      return await this.succeed({
        outcome: "plan",
        summary: outcome.summary,
        steps: outcome.steps,
        evidence: this.evidence,
      });
    }
    if (spec.phase !== "implement")
      return await this.fail("infrastructure", "the engine finished a plan run without a plan", false);
    await commitAll(ws, commitMessage(outcome.summary, `Baton: ${spec.request.text.slice(0, 60)}`));
    const head = await ws.revParse("HEAD");
    if (head === ws.startSha) {
      return await this.succeed({ outcome: "no_change", summary: outcome.summary, evidence: this.evidence });
    }
    const files = await changedFiles(ws, ws.startSha);
    const bundle = await createBundle(
      ws,
      spec.repository.headBranch,
      path.join(ws.dir, ".git", "baton-run.bundle"),
    );
    if (bundle.length > MAX_BUNDLE_BYTES) {
      return await this.fail(
        "bundle_too_large",
        `the change is too large to upload (${bundle.length} bytes; the limit is ${MAX_BUNDLE_BYTES})`,
        false,
      );
    }
    await this.client.putBundle(bundle);
    this.events.emit({ type: "files.changed", paths: files });
    return await this.succeed({
      outcome: "changes",
      summary: outcome.summary,
      headSha: head,
      filesChanged: files,
      evidence: this.evidence,
    });
  }

  /** Events first (the runner may end the token once the result is in), then the result, then run.completed. */
  private async succeed(result: RunResult): Promise<AgentExitCode> {
    await this.events.drain(FINAL_DRAIN_MS);
    await this.client.postResult(result);
    this.events.emit({ type: "run.completed" });
    await this.events.drain(5_000);
    this.log.info(
      { outcome: result.outcome, commands: this.evidence.length, ms: Date.now() - this.started },
      "run completed",
    );
    return 0;
  }

  private async fail(
    code: string,
    message: string,
    retryable: boolean,
    exitCode: AgentExitCode = 1,
  ): Promise<AgentExitCode> {
    this.log.warn({ code, message }, "run failed");
    this.events.emit({ type: "run.failed", code, message: this.redact(message).slice(0, 10_000), retryable });
    const delivered = await this.events.drain(FINAL_DRAIN_MS);
    if (!delivered) this.log.error("could not deliver the final events to the runner");
    return exitCode;
  }
}
