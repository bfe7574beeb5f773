// TaskStore on Redis. A task is a hash {v: version, json: Task}; updates are a compare-and-set in
// Lua on `v`, so concurrent writers (Slack retries, several workers) never lose each other's changes.
// Indexes: the thread's active task, Baton's messages -> task, per-user / per-channel / active sets.
import { isTerminal, type Task, type TaskId } from "../../core/task.js";
import { VersionConflictError, type TaskMessageKind, type TaskStore } from "../../core/ports/task-store.js";
import type { Redis } from "./connection.js";

/** How long finished tasks stay readable (status, App Home, late reactions). */
const FINISHED_TTL_SECONDS = 90 * 24 * 3600;

// KEYS: task, active zset, thread key; ARGV: expected version, new version, json, id, terminal flag, score, ttl
const UPDATE_SCRIPT = `
local v = redis.call('HGET', KEYS[1], 'v')
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'json', ARGV[3])
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
else
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[4])
  redis.call('PERSIST', KEYS[1])
end
return 1
`;

// KEYS: task, active zset, thread key, user zset, channel zset; ARGV: json, id, score
const CREATE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', '1', 'json', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -1001)
redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -1001)
return 1
`;

export function createRedisTaskStore(redis: Redis, prefix: string): TaskStore {
  const k = {
    task: (id: string) => `${prefix}task:${id}`,
    active: () => `${prefix}tasks:active`,
    thread: (channel: string, ts: string) => `${prefix}thread:${channel}:${ts}`,
    user: (user: string) => `${prefix}tasks:user:${user}`,
    channel: (channel: string) => `${prefix}tasks:channel:${channel}`,
    message: (channel: string, ts: string) => `${prefix}msg:${channel}:${ts}`,
  };

  const read = async (id: string): Promise<Task | undefined> => {
    const [v, json] = await redis.hmget(k.task(id), "v", "json");
    if (v == null || json == null) return undefined;
    const task = JSON.parse(json) as Task;
    task.version = Number(v);
    return task;
  };

  const readMany = async (ids: string[]): Promise<Task[]> => {
    const tasks = await Promise.all(ids.map((id) => read(id)));
    return tasks.filter((t): t is Task => t !== undefined);
  };

  return {
    async create(task) {
      const stored: Task = { ...task, version: 1 };
      const score = Date.parse(task.createdAt) || Date.now();
      const created = await redis.eval(
        CREATE_SCRIPT,
        5,
        k.task(task.id),
        k.active(),
        k.thread(task.channelId, task.threadTs),
        k.user(task.requester.userId),
        k.channel(task.channelId),
        JSON.stringify(stored),
        task.id,
        String(score),
      );
      if (created !== 1) throw new Error(`task ${task.id} already exists`);
      return stored;
    },

    get: read,

    async update(next) {
      const stored: Task = { ...next, version: next.version + 1 };
      const ok = await redis.eval(
        UPDATE_SCRIPT,
        3,
        k.task(next.id),
        k.active(),
        k.thread(next.channelId, next.threadTs),
        String(next.version),
        String(stored.version),
        JSON.stringify(stored),
        next.id,
        isTerminal(next.state) ? "1" : "0",
        String(Date.parse(next.createdAt) || Date.now()),
        String(FINISHED_TTL_SECONDS),
      );
      if (ok !== 1) throw new VersionConflictError(next.id);
      return stored;
    },

    async findActiveByThread(channelId, threadTs) {
      const id = await redis.get(k.thread(channelId, threadTs));
      if (!id) return undefined;
      const task = await read(id);
      return task && !isTerminal(task.state) ? task : undefined;
    },

    async indexMessage(channelId, ts, taskId, kind) {
      await redis.set(k.message(channelId, ts), JSON.stringify({ taskId, kind }), "EX", FINISHED_TTL_SECONDS);
    },

    async findByMessage(channelId, ts) {
      const raw = await redis.get(k.message(channelId, ts));
      if (!raw) return undefined;
      const parsed = JSON.parse(raw) as { taskId: TaskId; kind: TaskMessageKind };
      return parsed;
    },

    async listByUser(userId, limit) {
      return readMany(await redis.zrevrange(k.user(userId), 0, Math.max(0, limit - 1)));
    },

    async listByChannel(channelId, limit) {
      return readMany(await redis.zrevrange(k.channel(channelId), 0, Math.max(0, limit - 1)));
    },

    async listActive(limit) {
      const tasks = await readMany(await redis.zrevrange(k.active(), 0, Math.max(0, limit - 1)));
      return tasks.filter((t) => !isTerminal(t.state));
    },
  };
}
