// Run records on Redis: what the runner API and the supervisor share about one agent run — its
// identity, lifecycle (queued → running → ended, ended exactly once), the last event seq, the
// runner-recorded evidence, the cached thread context, relayed messages and the cancel flag.
import { z } from "zod";
import type { TaskEvent } from "../../core/task.js";
import { EvidenceEntry } from "../../shared/run-result.js";
import { RunPhase, ThreadMessage } from "../../shared/run-spec.js";
import type { Redis } from "./connection.js";

export type RunRecordStatus = "queued" | "running" | "ended";
export type RunOutcome = "plan" | "changes" | "no_change" | "failed" | "cancelled";
export type BudgetKind = "run" | "channel";

export interface RunFailureNote {
  code: string;
  message: string;
}

export interface RunRecord {
  runId: string;
  taskId: string;
  phase: RunPhase;
  attempt: number;
  launch: number;
  repo: string;
  channelId: string;
  userId: string;
  createdAt: string;
  timeoutSeconds: number;
  status: RunRecordStatus;
  startedAt?: string;
  endedAt?: string;
  outcome?: RunOutcome;
  /** Highest agent event seq recorded; -1 before the first. */
  lastSeq: number;
  cancelRequested: boolean;
  budgetExhausted?: BudgetKind;
  agentFailure?: RunFailureNote;
  /** The task event the run ended with; re-applied until it sticks (transitions ignore repeats). */
  finalEvent?: TaskEvent;
  /** True once the final event reached the task and the run's tokens were revoked. */
  finalized: boolean;
}

export interface NewRunRecord {
  runId: string;
  taskId: string;
  phase: RunPhase;
  attempt: number;
  launch: number;
  repo: string;
  channelId: string;
  userId: string;
  createdAt: string;
  timeoutSeconds: number;
}

export interface RelayedMessage {
  author: string;
  text: string;
  ts: string;
}

export interface RunRecords {
  /** Creates the record unless it exists; true when created. */
  create(input: NewRunRecord): Promise<boolean>;
  get(runId: string): Promise<RunRecord | undefined>;
  markRunning(runId: string, at: string): Promise<void>;
  /**
   * Records agent event `seq` once: true when seq is above the recorded one (then it becomes the
   * recorded one, and `evidence`, if given, is appended in the same atomic step).
   */
  acceptEvent(runId: string, seq: number, evidence?: EvidenceEntry): Promise<boolean>;
  evidence(runId: string): Promise<EvidenceEntry[]>;
  /** Stores the thread context the first time; always returns the stored one (read once per run). */
  cacheThread(runId: string, thread: ThreadMessage[]): Promise<ThreadMessage[]>;
  cachedThread(runId: string): Promise<ThreadMessage[] | undefined>;
  requestCancel(runId: string): Promise<void>;
  relay(runId: string, message: RelayedMessage): Promise<void>;
  /** Relayed messages not handed out yet (each handed out once). */
  takeRelayed(runId: string): Promise<RelayedMessage[]>;
  setBudgetExhausted(runId: string, kind: BudgetKind): Promise<void>;
  setAgentFailure(runId: string, failure: RunFailureNote): Promise<void>;
  /** Ends the run once: true for the caller that ended it, false when it had ended already. */
  end(runId: string, outcome: RunOutcome, at: string, finalEvent?: TaskEvent): Promise<boolean>;
  markFinalized(runId: string): Promise<void>;
  /** Counts a failed launch attempt; returns the count so far. */
  noteLaunchError(runId: string): Promise<number>;
}

/** Records live a month; ended ones a week (diagnosis, late agent calls get 401 anyway). */
const RECORD_TTL_SECONDS = 30 * 24 * 3600;
const ENDED_TTL_SECONDS = 7 * 24 * 3600;
const MAX_EVIDENCE = 5000;

// KEYS: record, evidence list; ARGV: seq, evidence json or ""
const ACCEPT_EVENT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'lastSeq') or '-1')
local seq = tonumber(ARGV[1])
if seq <= last then return 0 end
redis.call('HSET', KEYS[1], 'lastSeq', ARGV[1])
if ARGV[2] ~= '' and redis.call('LLEN', KEYS[2]) < ${MAX_EVIDENCE} then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ${RECORD_TTL_SECONDS})
end
return 1
`;

// KEYS: record, evidence, relay; ARGV: outcome, at, final event json or ""
const END = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'status') == 'ended' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'ended', 'outcome', ARGV[1], 'endedAt', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'finalEvent', ARGV[3]) end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ${ENDED_TTL_SECONDS}) end
return 1
`;

// KEYS: record, relay list; returns the messages after the cursor and advances it
const TAKE_RELAYED = `
local cursor = tonumber(redis.call('HGET', KEYS[1], 'relayCursor') or '0')
local items = redis.call('LRANGE', KEYS[2], cursor, cursor + 99)
if #items > 0 then redis.call('HSET', KEYS[1], 'relayCursor', cursor + #items) end
return items
`;

const Stored = z.object({
  runId: z.string(),
  taskId: z.string(),
  phase: RunPhase,
  attempt: z.coerce.number().int(),
  launch: z.coerce.number().int(),
  repo: z.string(),
  channelId: z.string(),
  userId: z.string(),
  createdAt: z.string(),
  timeoutSeconds: z.coerce.number(),
  status: z.enum(["queued", "running", "ended"]),
  startedAt: z.string().optional(),
  endedAt: z.string().optional(),
  outcome: z.enum(["plan", "changes", "no_change", "failed", "cancelled"]).optional(),
  lastSeq: z.coerce.number().int().default(-1),
  cancelRequested: z.string().optional(),
  budgetExhausted: z.enum(["run", "channel"]).optional(),
  agentFailure: z.string().optional(),
  finalEvent: z.string().optional(),
  finalized: z.string().optional(),
});

const FailureNote = z.object({ code: z.string(), message: z.string() });
const Relayed = z.object({ author: z.string(), text: z.string(), ts: z.string() });

function parseJson<T>(schema: z.ZodType<T>, text: string | undefined): T | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function createRedisRunRecords(redis: Redis, prefix: string): RunRecords {
  const k = {
    record: (runId: string) => `${prefix}run:${runId}`,
    evidence: (runId: string) => `${prefix}run:${runId}:evidence`,
    relay: (runId: string) => `${prefix}run:${runId}:relay`,
  };

  return {
    async create(input) {
      const fields: Record<string, string> = {
        runId: input.runId,
        taskId: input.taskId,
        phase: input.phase,
        attempt: String(input.attempt),
        launch: String(input.launch),
        repo: input.repo,
        channelId: input.channelId,
        userId: input.userId,
        createdAt: input.createdAt,
        timeoutSeconds: String(input.timeoutSeconds),
        status: "queued",
        lastSeq: "-1",
      };
      const created = await redis.eval(
        `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
         redis.call('HSET', KEYS[1], unpack(ARGV, 2))
         redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
         return 1`,
        1,
        k.record(input.runId),
        String(RECORD_TTL_SECONDS),
        ...Object.entries(fields).flat(),
      );
      return created === 1;
    },

    async get(runId) {
      const raw = await redis.hgetall(k.record(runId));
      if (!raw.runId || !raw.status) return undefined;
      const parsed = Stored.safeParse(raw);
      if (!parsed.success) return undefined;
      const s = parsed.data;
      const finalEvent = s.finalEvent ? (JSON.parse(s.finalEvent) as TaskEvent) : undefined;
      const agentFailure = parseJson(FailureNote, s.agentFailure);
      return {
        runId: s.runId,
        taskId: s.taskId,
        phase: s.phase,
        attempt: s.attempt,
        launch: s.launch,
        repo: s.repo,
        channelId: s.channelId,
        userId: s.userId,
        createdAt: s.createdAt,
        timeoutSeconds: s.timeoutSeconds,
        status: s.status,
        ...(s.startedAt ? { startedAt: s.startedAt } : {}),
        ...(s.endedAt ? { endedAt: s.endedAt } : {}),
        ...(s.outcome ? { outcome: s.outcome } : {}),
        lastSeq: s.lastSeq,
        cancelRequested: s.cancelRequested === "1",
        ...(s.budgetExhausted ? { budgetExhausted: s.budgetExhausted } : {}),
        ...(agentFailure ? { agentFailure } : {}),
        ...(finalEvent ? { finalEvent } : {}),
        finalized: s.finalized === "1",
      };
    },

    async markRunning(runId, at) {
      // Only a queued run becomes running; an ended one stays ended.
      await redis.eval(
        `if redis.call('HGET', KEYS[1], 'status') == 'queued' then
           redis.call('HSET', KEYS[1], 'status', 'running', 'startedAt', ARGV[1]) end
         return 1`,
        1,
        k.record(runId),
        at,
      );
    },

    async acceptEvent(runId, seq, evidence) {
      const answer = await redis.eval(
        ACCEPT_EVENT,
        2,
        k.record(runId),
        k.evidence(runId),
        String(seq),
        evidence ? JSON.stringify(evidence) : "",
      );
      return answer === 1;
    },

    async evidence(runId) {
      const items = await redis.lrange(k.evidence(runId), 0, -1);
      return items
        .map((item) => parseJson(EvidenceEntry, item))
        .filter((e): e is EvidenceEntry => e !== undefined);
    },

    async cacheThread(runId, thread) {
      await redis.hsetnx(k.record(runId), "thread", JSON.stringify(thread));
      return (await this.cachedThread(runId)) ?? thread;
    },

    async cachedThread(runId) {
      return parseJson(z.array(ThreadMessage), (await redis.hget(k.record(runId), "thread")) ?? undefined);
    },

    async requestCancel(runId) {
      await redis.eval(
        `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cancelRequested', '1') end return 1`,
        1,
        k.record(runId),
      );
    },

    async relay(runId, message) {
      await redis
        .multi()
        .rpush(k.relay(runId), JSON.stringify(message))
        .expire(k.relay(runId), RECORD_TTL_SECONDS)
        .exec();
    },

    async takeRelayed(runId) {
      const items = (await redis.eval(TAKE_RELAYED, 2, k.record(runId), k.relay(runId))) as string[];
      return items
        .map((item) => parseJson(Relayed, item))
        .filter((m): m is RelayedMessage => m !== undefined);
    },

    async setBudgetExhausted(runId, kind) {
      await redis.hset(k.record(runId), "budgetExhausted", kind);
    },

    async setAgentFailure(runId, failure) {
      await redis.hset(k.record(runId), "agentFailure", JSON.stringify(failure));
    },

    async end(runId, outcome, at, finalEvent) {
      const answer = await redis.eval(
        END,
        3,
        k.record(runId),
        k.evidence(runId),
        k.relay(runId),
        outcome,
        at,
        finalEvent ? JSON.stringify(finalEvent) : "",
      );
      return answer === 1;
    },

    async markFinalized(runId) {
      await redis.hset(k.record(runId), "finalized", "1");
    },

    async noteLaunchError(runId) {
      return redis.hincrby(k.record(runId), "launchErrors", 1);
    },
  };
}
