// Runs as the rest of Baton sees them (RunControl): create the run records and enqueue runs (one
// job per run id, so a run is launched once), cancel and relay messages to running agents, and build
// the run spec an agent fetches with `GET /runner/v1/run`.
import type { ChatPort, ThreadReadMessage } from "../core/ports/chat.js";
import type { Clock } from "../core/ports/clock.js";
import type { RunControl } from "../core/ports/effects.js";
import type { GitHost } from "../core/ports/git-host.js";
import { headBranchFor, type Task } from "../core/task.js";
import type { Policy } from "../config/policy.js";
import type { Logger } from "../shared/logger.js";
import { RunSpec, type ThreadMessage } from "../shared/run-spec.js";
import { RUNNER_BASE_PATH } from "../shared/runner-api.js";
import type { RunQueue } from "../adapters/queue/run-queue.js";
import type { RunRecord, RunRecords } from "../adapters/redis/run-records.js";

/** Thread context handed to the agent: the last messages, each capped (untrusted data, bounded). */
export const THREAD_MESSAGE_LIMIT = 50;
export const THREAD_TEXT_CAP = 4_000;
/** Model turns an agent may take in one run. */
export const DEFAULT_MAX_STEPS = 200;

export function runTimeoutSeconds(policy: Policy): number {
  return Math.round(policy.limits.runTimeoutMinutes * 60);
}

export interface RunControlDeps {
  records: RunRecords;
  queue: RunQueue;
  policy: Policy;
  clock: Clock;
  logger: Logger;
}

export function createRunControl(deps: RunControlDeps): RunControl {
  const { records, queue, logger } = deps;
  return {
    async start(task, runIds) {
      if (!task.repo) throw new Error(`task ${task.id} has no repository; cannot start runs`);
      for (const runId of runIds) {
        const info = task.runs.find((r) => r.runId === runId);
        if (!info) {
          logger.warn({ taskId: task.id, runId }, "start_runs names a run the task does not have");
          continue;
        }
        await records.create({
          runId,
          taskId: task.id,
          phase: info.phase,
          attempt: info.attempt,
          launch: info.launch,
          repo: task.repo,
          channelId: task.channelId,
          userId: task.requester.userId,
          createdAt: deps.clock.now().toISOString(),
          timeoutSeconds: runTimeoutSeconds(deps.policy),
        });
        const record = await records.get(runId);
        // An ended run is never enqueued again (a re-delivered start_runs must not relaunch it).
        if (record?.status === "ended") continue;
        await queue.enqueue({ runId, taskId: task.id });
        logger.info({ taskId: task.id, runId, phase: info.phase, attempt: info.attempt }, "run enqueued");
      }
    },

    async cancel(task, runIds) {
      for (const runId of runIds) {
        await records.requestCancel(runId);
        // Still waiting: take it out of the queue. Held by a worker: its supervisor sees the flag.
        if (await queue.removeIfWaiting(runId)) {
          await records.end(runId, "cancelled", deps.clock.now().toISOString());
        }
        logger.info({ taskId: task.id, runId }, "run cancel requested");
      }
    },

    async relay(task, runIds, text, userId) {
      const ts = deps.clock.now().toISOString();
      for (const runId of runIds) await records.relay(runId, { author: userId, text, ts });
      logger.info({ taskId: task.id, runIds }, "thread message relayed to runs");
    },
  };
}

export interface RunSpecDeps {
  records: RunRecords;
  chat: ChatPort;
  gitHost: GitHost;
  policy: Policy;
  /** BATON_MODEL: the only model the gateway lets the agent use. */
  model: string;
  runnerUrl: string;
  maxSteps?: number;
}

function threadMessage(message: ThreadReadMessage): ThreadMessage {
  const author = message.user ?? (message.botId ? `bot:${message.botId}` : "unknown");
  const text =
    message.text.length > THREAD_TEXT_CAP ? `${message.text.slice(0, THREAD_TEXT_CAP)}…` : message.text;
  return { author, text, ts: message.ts };
}

/** The thread once per run: read from Slack the first time, then from the run record. */
async function threadFor(deps: RunSpecDeps, record: RunRecord, task: Task): Promise<ThreadMessage[]> {
  const cached = await deps.records.cachedThread(record.runId);
  if (cached) return cached;
  const own = new Set(Object.values(task.slack).filter((ts): ts is string => typeof ts === "string"));
  const messages = await deps.chat.readThread({
    channel: task.channelId,
    threadTs: task.threadTs,
    limit: THREAD_MESSAGE_LIMIT,
  });
  const thread = messages
    .filter((m) => !own.has(m.ts))
    .slice(-THREAD_MESSAGE_LIMIT)
    .map(threadMessage);
  return deps.records.cacheThread(record.runId, thread);
}

export class RunSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunSpecError";
  }
}

export async function buildRunSpec(deps: RunSpecDeps, record: RunRecord, task: Task): Promise<RunSpec> {
  const repo = record.repo;
  const repoPolicy = deps.policy.repos[repo];
  let baseBranch = task.baseBranch ?? repoPolicy?.baseBranch;
  if (!baseBranch) {
    const info = await deps.gitHost.repoInfo(repo);
    if (!info) throw new RunSpecError(`Baton cannot see the repository ${repo}.`);
    baseBranch = info.defaultBranch;
  }
  // After a pull request exists, every run works on its branch (follow-ups add commits to it).
  const head = task.pr
    ? { headBranch: task.pr.headBranch, headExists: true }
    : { headBranch: headBranchFor(task.id, record.attempt, task.attempts), headExists: false };
  const runnerUrl = deps.runnerUrl.replace(/\/+$/, "");
  const [owner, name] = repo.split("/");
  const spec = {
    runId: record.runId,
    taskId: task.id,
    phase: record.phase,
    attempt: record.attempt,
    round: Math.max(1, task.round),
    repository: {
      fullName: repo,
      cloneUrl: `${runnerUrl}${RUNNER_BASE_PATH}/git/${owner}/${name}.git`,
      baseBranch,
      ...head,
    },
    request: { text: task.request.text, requester: task.requester.name ?? task.requester.userId },
    thread: await threadFor(deps, record, task),
    ...(record.phase === "implement" && task.plan
      ? { plan: { summary: task.plan.summary, steps: task.plan.steps } }
      : {}),
    followUps: task.feedback.map((f) => f.text),
    limits: {
      maxSteps: deps.maxSteps ?? DEFAULT_MAX_STEPS,
      maxTokens: deps.policy.limits.runTokenBudget,
      wallClockMs: Math.round(deps.policy.limits.runTimeoutMinutes * 60_000),
    },
    model: deps.model,
    engine: "builtin",
  };
  return RunSpec.parse(spec);
}
