// The runner API (CONTRACT §7), mounted by the HTTP server at `/runner/v1`: what agents call with
// their per-run token — the run spec, events, bundle, result, the read-only git proxy and the model
// gateway. Every call is authorised by the token alone; a token only ever reaches its own run.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Policy } from "../../config/policy.js";
import type { BundleStore } from "../../core/ports/bundles.js";
import type { ChatPort } from "../../core/ports/chat.js";
import type { Clock } from "../../core/ports/clock.js";
import type { GitHost } from "../../core/ports/git-host.js";
import type { TaskStore } from "../../core/ports/task-store.js";
import type { CommandSummary, TaskEvent, TaskId } from "../../core/task.js";
import { PostEventsBody, type PlanStep, type PostEventsAnswer } from "../../shared/agent-events.js";
import type { Logger } from "../../shared/logger.js";
import { RunResult, type EvidenceEntry } from "../../shared/run-result.js";
import { MAX_BUNDLE_BYTES, RUNNER_BASE_PATH } from "../../shared/runner-api.js";
import { applyTaskEvent, type EffectRunner } from "../../services/task-events.js";
import { buildRunSpec, RunSpecError } from "../../services/runs.js";
import type { Metrics } from "../metrics/metrics.js";
import type { RunRecord, RunRecords } from "../redis/run-records.js";
import type { RunTokens } from "../redis/run-tokens.js";
import type { BudgetReader } from "../../core/ports/budget.js";
import type { UsageMeter } from "../redis/usage.js";
import { createGitProxy } from "./git-proxy.js";
import { HttpError, credentialOf, readBody, readJson, sendJson } from "./http.js";
import { budgetFailure, createLlmGateway, type ModelUpstream } from "./llm-gateway.js";

const MAX_EVENTS_BYTES = 24 * 1024 * 1024;
const MAX_RESULT_BYTES = 4 * 1024 * 1024;

export interface RunnerApiDeps {
  records: RunRecords;
  tokens: RunTokens;
  usage: UsageMeter;
  budget: BudgetReader;
  bundles: BundleStore;
  store: TaskStore;
  effects: EffectRunner;
  chat: ChatPort;
  gitHost: GitHost;
  policy: Policy;
  upstream: ModelUpstream;
  /** BATON_RUNNER_URL (clone URLs in run specs point here). */
  runnerUrl: string;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** How often a task's usage totals are reported at most (run.progress coalescing). */
  usageReportMs?: number;
  fetch?: typeof fetch;
}

export interface RunnerApi {
  prefix: string;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Reports a task's pending usage totals now (before a run's final event). */
  flushUsage(taskId: string): Promise<void>;
  close(): Promise<void>;
}

function evidenceKey(e: EvidenceEntry): string {
  return JSON.stringify([e.argv, e.exitCode]);
}

export function createRunnerApi(deps: RunnerApiDeps): RunnerApi {
  const { records, logger } = deps;
  const apply = (taskId: string, event: TaskEvent) =>
    applyTaskEvent({ store: deps.store, effects: deps.effects }, taskId as TaskId, event);
  const now = () => deps.clock.now().toISOString();

  // Usage reports, coalesced per task: at most one run.progress {usage} per interval.
  const usageTimers = new Map<string, { runId: string; timer: NodeJS.Timeout }>();
  const reportUsage = async (taskId: string, runId: string) => {
    const usage = await deps.usage.taskTotals(taskId);
    await apply(taskId, { type: "run.progress", at: now(), runId, usage });
  };
  const flushUsage = async (taskId: string) => {
    const pending = usageTimers.get(taskId);
    if (!pending) return;
    clearTimeout(pending.timer);
    usageTimers.delete(taskId);
    await reportUsage(taskId, pending.runId);
  };
  const scheduleUsage = (record: RunRecord) => {
    const pending = usageTimers.get(record.taskId);
    if (pending) {
      pending.runId = record.runId;
      return;
    }
    const timer = setTimeout(() => {
      const entry = usageTimers.get(record.taskId);
      usageTimers.delete(record.taskId);
      reportUsage(record.taskId, entry?.runId ?? record.runId).catch((error: unknown) =>
        logger.warn({ taskId: record.taskId, err: error }, "usage report failed"),
      );
    }, deps.usageReportMs ?? 2_000);
    timer.unref();
    usageTimers.set(record.taskId, { runId: record.runId, timer });
  };

  const gateway = createLlmGateway({
    records,
    usage: deps.usage,
    budget: deps.budget,
    policy: deps.policy,
    upstream: deps.upstream,
    clock: deps.clock,
    logger,
    metrics: deps.metrics,
    onMetered: scheduleUsage,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });
  const git = createGitProxy({ gitHost: deps.gitHost, logger, ...(deps.fetch ? { fetch: deps.fetch } : {}) });

  /** The run a request's token belongs to; 401 for a missing, unknown, revoked or ended-run token. */
  const authenticate = async (req: IncomingMessage, path: string): Promise<RunRecord> => {
    const challenge: Record<string, string> = path.startsWith("/git/")
      ? { "www-authenticate": 'Basic realm="Baton runner"' }
      : {};
    const token = credentialOf(req);
    if (!token) throw new HttpError(401, "missing run token", challenge);
    const runId = await deps.tokens.resolve(token);
    const record = runId ? await records.get(runId) : undefined;
    if (!record || (record.status === "ended" && record.finalized))
      throw new HttpError(401, "unknown or expired run token", challenge);
    return record;
  };

  const getRun = async (res: ServerResponse, record: RunRecord) => {
    const task = await deps.store.get(record.taskId as TaskId);
    if (!task) throw new HttpError(410, "the task of this run no longer exists");
    try {
      const spec = await buildRunSpec(
        {
          records,
          chat: deps.chat,
          gitHost: deps.gitHost,
          policy: deps.policy,
          model: deps.upstream.model,
          runnerUrl: deps.runnerUrl,
        },
        record,
        task,
      );
      sendJson(res, 200, spec);
    } catch (error) {
      if (error instanceof RunSpecError) throw new HttpError(422, error.message);
      throw error;
    }
  };

  const postEvents = async (req: IncomingMessage, res: ServerResponse, record: RunRecord) => {
    const parsed = PostEventsBody.safeParse(await readJson(req, MAX_EVENTS_BYTES));
    if (!parsed.success)
      throw new HttpError(
        400,
        `invalid events: ${parsed.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join(".")}: ${i.message}`)
          .join("; ")}`,
      );
    const events = [...parsed.data.events].sort((a, b) => a.seq - b.seq);
    let started = false;
    let steps: PlanStep[] | undefined;
    let lastCommand: CommandSummary | undefined;
    for (const event of events) {
      const evidence: EvidenceEntry | undefined =
        event.type === "command.finished"
          ? {
              argv: event.argv,
              exitCode: event.exitCode,
              durationMs: event.durationMs,
              ...(event.timedOut !== undefined ? { timedOut: event.timedOut } : {}),
            }
          : undefined;
      // Idempotent by seq: a repeated or older event is recorded nowhere twice.
      if (!(await records.acceptEvent(record.runId, event.seq, evidence))) continue;
      switch (event.type) {
        case "run.started":
          started = true;
          break;
        case "plan.updated":
          steps = event.steps;
          break;
        case "command.finished":
          lastCommand = { argv: event.argv, exitCode: event.exitCode, durationMs: event.durationMs };
          break;
        case "run.failed":
          // The agent stops itself at the run's token budget just before the gateway would refuse:
          // report it with the gateway's sentence, which names the setting to raise.
          await records.setAgentFailure(
            record.runId,
            event.code === "token_limit"
              ? budgetFailure("run", deps.policy, record.channelId)
              : { code: event.code, message: event.message },
          );
          logger.warn(
            { runId: record.runId, taskId: record.taskId, code: event.code },
            "agent reported failure",
          );
          break;
        default:
          // files.changed, message, usage (metered by the gateway), run.completed: nothing to apply.
          break;
      }
    }
    if (started) await apply(record.taskId, { type: "run.started", at: now(), runId: record.runId });
    if (steps || lastCommand) {
      // One coalesced progress event per call, whatever the number of events in it.
      await apply(record.taskId, {
        type: "run.progress",
        at: now(),
        runId: record.runId,
        ...(steps ? { steps } : {}),
        ...(lastCommand ? { lastCommand } : {}),
      });
    }
    const current = (await records.get(record.runId)) ?? record;
    const answer: PostEventsAnswer = {
      acceptedSeq: current.lastSeq,
      cancelled: current.cancelRequested || current.outcome === "cancelled",
      messages: current.status === "ended" ? [] : await records.takeRelayed(record.runId),
    };
    sendJson(res, 200, answer);
  };

  const putBundle = async (req: IncomingMessage, res: ServerResponse, record: RunRecord) => {
    if (record.status === "ended") throw new HttpError(409, "the run has ended");
    if (record.phase !== "implement") throw new HttpError(409, "plan runs upload no bundle");
    const data = await readBody(req, MAX_BUNDLE_BYTES);
    if (data.length === 0) throw new HttpError(400, "empty bundle");
    await deps.bundles.put(record.runId, data);
    logger.info({ runId: record.runId, taskId: record.taskId, bytes: data.length }, "bundle stored");
    sendJson(res, 200, { ok: true, bytes: data.length });
  };

  const postResult = async (req: IncomingMessage, res: ServerResponse, record: RunRecord) => {
    const parsed = RunResult.safeParse(await readJson(req, MAX_RESULT_BYTES));
    if (!parsed.success)
      throw new HttpError(
        400,
        `invalid result: ${parsed.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join(".")}: ${i.message}`)
          .join("; ")}`,
      );
    const result = parsed.data;
    if (record.status === "ended") {
      // A retried POST whose first answer was lost: re-apply the recorded outcome (a no-op if it stuck).
      if (record.finalEvent) {
        await apply(record.taskId, record.finalEvent);
        sendJson(res, 200, { ok: true });
        return;
      }
      throw new HttpError(409, "the run has ended");
    }
    if ((record.phase === "plan") !== (result.outcome === "plan")) {
      throw new HttpError(400, `a ${record.phase} run cannot end with outcome ${result.outcome}`);
    }
    // The evidence is what the runner recorded, whatever the agent claims.
    const evidence = await records.evidence(record.runId);
    const claimed = result.evidence.map(evidenceKey).join("\n");
    if (claimed !== evidence.map(evidenceKey).join("\n")) {
      logger.warn(
        {
          runId: record.runId,
          taskId: record.taskId,
          claimed: result.evidence.length,
          recorded: evidence.length,
        },
        "agent's evidence differs from the runner's record; using the runner's",
      );
    }
    const at = now();
    let event: TaskEvent;
    if (result.outcome === "plan") {
      event = {
        type: "run.plan_ready",
        at,
        runId: record.runId,
        summary: result.summary,
        steps: result.steps,
      };
    } else if (result.outcome === "changes") {
      if (!(await deps.bundles.get(record.runId)))
        throw new HttpError(409, "upload the bundle (PUT /bundle) before posting a changes result");
      event = {
        type: "run.changes_ready",
        at,
        runId: record.runId,
        summary: result.summary,
        headSha: result.headSha,
        filesChanged: result.filesChanged,
        evidence,
      };
    } else {
      event = { type: "run.no_change", at, runId: record.runId, summary: result.summary, evidence };
    }
    await flushUsage(record.taskId).catch((error: unknown) =>
      logger.warn({ taskId: record.taskId, err: error }, "usage flush failed"),
    );
    await records.end(record.runId, result.outcome, at, event);
    await apply(record.taskId, event);
    logger.info(
      { runId: record.runId, taskId: record.taskId, outcome: result.outcome },
      "run result recorded",
    );
    sendJson(res, 200, { ok: true });
  };

  const route = async (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => {
    const method = req.method ?? "GET";
    const record = await authenticate(req, path);
    if (path.startsWith("/git/")) return git.handle(req, res, record, path, query);
    if (path === "/run" && method === "GET") return getRun(res, record);
    if (path === "/events" && method === "POST") return postEvents(req, res, record);
    if (path === "/bundle" && method === "PUT") return putBundle(req, res, record);
    if (path === "/result" && method === "POST") return postResult(req, res, record);
    if (path === "/llm/v1/chat/completions" && method === "POST")
      return gateway.handle(req, res, record, "chat/completions");
    if (path === "/llm/v1/responses" && method === "POST")
      return gateway.handle(req, res, record, "responses");
    throw new HttpError(404, "no such runner API call");
  };

  return {
    prefix: RUNNER_BASE_PATH,
    async handle(req, res) {
      const url = new URL(req.url ?? "/", "http://runner.invalid");
      const path = url.pathname.startsWith(RUNNER_BASE_PATH)
        ? url.pathname.slice(RUNNER_BASE_PATH.length) || "/"
        : url.pathname;
      try {
        await route(req, res, path, url.searchParams);
      } catch (error) {
        if (error instanceof HttpError) {
          if (error.status >= 500)
            logger.warn({ path, status: error.status, err: error }, "runner API call failed");
          if (!res.headersSent) {
            if (path.startsWith("/llm/")) {
              sendJson(
                res,
                error.status,
                { error: { type: "invalid_request_error", code: null, message: error.message } },
                error.headers,
              );
            } else {
              sendJson(res, error.status, { error: error.message }, error.headers);
            }
          } else res.end();
          return;
        }
        // Redis down, upstream trouble: the agent retries; no internals in the answer.
        logger.error({ path, err: error }, "runner API call failed");
        if (!res.headersSent) sendJson(res, 503, { error: "temporarily unavailable; retry" });
        else res.destroy();
      }
    },
    flushUsage,
    async close() {
      for (const { timer } of usageTimers.values()) clearTimeout(timer);
      usageTimers.clear();
    },
  };
}
