// Model usage meters on Redis (written by the runner's /llm gateway): tokens and cost per run, per
// task, and per channel and per user per UTC day. Keys (hashes with promptTokens, completionTokens,
// cachedTokens, costUsd):
//   <prefix>usage:run:<runId>   <prefix>usage:task:<taskId>
//   <prefix>usage:channel:<C>:<yyyy-mm-dd>   <prefix>usage:user:<U>:<yyyy-mm-dd>
// With the default prefix `baton:` the channel key is `baton:usage:channel:<C>:<yyyy-mm-dd>`.
import type { Clock } from "../../core/ports/clock.js";
import type { UsageTotals } from "../../core/task.js";
import type { ModelPrice } from "../../config/policy.js";
import type { Redis } from "./connection.js";
import type { BudgetReader } from "../../core/ports/budget.js";

export interface UsageSample {
  runId: string;
  taskId: string;
  channelId: string;
  userId: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costUsd: number;
  at: Date;
}

export interface UsageMeter {
  record(sample: UsageSample): Promise<void>;
  runTotals(runId: string): Promise<UsageTotals>;
  taskTotals(taskId: string): Promise<UsageTotals>;
}

/** Per-day keys outlive the day for reporting, then go. */
const DAY_TTL_SECONDS = 40 * 24 * 3600;
const RUN_TTL_SECONDS = 30 * 24 * 3600;
const TASK_TTL_SECONDS = 90 * 24 * 3600;

export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/**
 * Cost in USD of one call from the policy's price table. `promptTokens` includes the cached ones
 * (OpenAI semantics); cached input is billed at `cachedInputPerMTok` when the table has it.
 */
export function costOf(
  prices: Record<string, ModelPrice>,
  model: string,
  usage: { promptTokens: number; completionTokens: number; cachedTokens: number },
): number {
  const price = prices[model];
  if (!price) return 0;
  const cached = Math.min(usage.cachedTokens, usage.promptTokens);
  const uncached = usage.promptTokens - cached;
  const cachedRate = price.cachedInputPerMTok ?? price.inputPerMTok;
  return (
    (uncached * price.inputPerMTok + cached * cachedRate + usage.completionTokens * price.outputPerMTok) /
    1_000_000
  );
}

function totals(raw: Record<string, string>): UsageTotals {
  const n = (v: string | undefined) => {
    const x = Number(v ?? 0);
    return Number.isFinite(x) ? x : 0;
  };
  return {
    promptTokens: n(raw.promptTokens),
    completionTokens: n(raw.completionTokens),
    cachedTokens: n(raw.cachedTokens),
    costUsd: n(raw.costUsd),
  };
}

export function usageKeys(prefix: string) {
  return {
    run: (runId: string) => `${prefix}usage:run:${runId}`,
    task: (taskId: string) => `${prefix}usage:task:${taskId}`,
    channelDay: (channelId: string, day: string) => `${prefix}usage:channel:${channelId}:${day}`,
    userDay: (userId: string, day: string) => `${prefix}usage:user:${userId}:${day}`,
  };
}

export function createRedisUsageMeter(redis: Redis, prefix: string): UsageMeter {
  const k = usageKeys(prefix);
  return {
    async record(sample) {
      const day = utcDay(sample.at);
      const multi = redis.multi();
      const targets: Array<[string, number]> = [
        [k.run(sample.runId), RUN_TTL_SECONDS],
        [k.task(sample.taskId), TASK_TTL_SECONDS],
        [k.channelDay(sample.channelId, day), DAY_TTL_SECONDS],
        [k.userDay(sample.userId, day), DAY_TTL_SECONDS],
      ];
      for (const [key, ttl] of targets) {
        multi
          .hincrby(key, "promptTokens", sample.promptTokens)
          .hincrby(key, "completionTokens", sample.completionTokens)
          .hincrby(key, "cachedTokens", sample.cachedTokens)
          .hincrbyfloat(key, "costUsd", sample.costUsd)
          .expire(key, ttl);
      }
      await multi.exec();
    },
    async runTotals(runId) {
      return totals(await redis.hgetall(k.run(runId)));
    },
    async taskTotals(taskId) {
      return totals(await redis.hgetall(k.task(taskId)));
    },
  };
}

export function createRedisBudgetReader(redis: Redis, prefix: string, clock: Clock): BudgetReader {
  const k = usageKeys(prefix);
  const cost = async (key: string) => totals({ costUsd: (await redis.hget(key, "costUsd")) ?? "0" }).costUsd;
  return {
    channelSpentToday: (channelId) => cost(k.channelDay(channelId, utcDay(clock.now()))),
    userSpentToday: (userId) => cost(k.userDay(userId, utcDay(clock.now()))),
  };
}
