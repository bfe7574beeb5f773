// Concurrency slots for agent runs on Redis, shared by every worker: the whole install
// (`limits.concurrentRuns`), per repository (`perRepo`) and per requester. One Lua script admits a
// run only when all three caps have room, so two workers can never both take the last slot.
// Slots carry a heartbeat: a slot whose worker vanished frees itself after `staleMs` unless another
// worker re-attaches to the run (and so refreshes it) first.
import type { Redis } from "./connection.js";

export interface SlotCaps {
  total: number;
  perRepo: number;
  perUser: number;
}

export interface SlotHolder {
  runId: string;
  repo: string;
  userId: string;
}

export interface RunSlots {
  /** True when the run holds a slot (now or already); false when a cap is full. */
  acquire(run: SlotHolder, caps: SlotCaps): Promise<boolean>;
  /** Refreshes the slots of runs this worker supervises. */
  heartbeat(runs: SlotHolder[]): Promise<void>;
  release(run: SlotHolder): Promise<void>;
  /** Run ids holding a slot (install-wide). */
  holders(): Promise<string[]>;
}

// KEYS: all, repo, user; ARGV: runId, now, staleBefore, total, perRepo, perUser
const ACQUIRE = `
for i = 1, 3 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[3]) end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  for i = 1, 3 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return 0 end
for i = 1, 3 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
return 1
`;

export function createRedisRunSlots(
  redis: Redis,
  prefix: string,
  options: { staleMs?: number; now?: () => number } = {},
): RunSlots {
  const staleMs = options.staleMs ?? 120_000;
  const now = options.now ?? Date.now;
  const keys = (run: SlotHolder) => [
    `${prefix}slots:all`,
    `${prefix}slots:repo:${run.repo.toLowerCase()}`,
    `${prefix}slots:user:${run.userId}`,
  ];
  return {
    async acquire(run, caps) {
      const t = now();
      const answer = await redis.eval(
        ACQUIRE,
        3,
        ...keys(run),
        run.runId,
        String(t),
        String(t - staleMs),
        String(caps.total),
        String(caps.perRepo),
        String(caps.perUser),
      );
      return answer === 1;
    },
    async heartbeat(runs) {
      if (runs.length === 0) return;
      const t = String(now());
      const multi = redis.multi();
      // XX: never resurrect a slot that was released meanwhile.
      for (const run of runs) for (const key of keys(run)) multi.zadd(key, "XX", t, run.runId);
      await multi.exec();
    },
    async release(run) {
      const multi = redis.multi();
      for (const key of keys(run)) multi.zrem(key, run.runId);
      await multi.exec();
    },
    async holders() {
      return redis.zrange(`${prefix}slots:all`, "0", "-1");
    },
  };
}
