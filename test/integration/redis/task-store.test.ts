import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import {
  connectRedis,
  checkEvictionPolicy,
  waitForRedis,
  type Redis,
} from "../../../src/adapters/redis/connection.js";
import { createRedisTaskStore } from "../../../src/adapters/redis/task-store.js";
import { createRedisClaims } from "../../../src/adapters/redis/claims.js";
import { VersionConflictError } from "../../../src/core/ports/task-store.js";
import { newTask, type Task, type TaskId } from "../../../src/core/task.js";
import { testRedisUrl, uniquePrefix } from "../../support/redis.js";

let redis: Redis;
beforeAll(async () => {
  redis = connectRedis(testRedisUrl());
  await waitForRedis(redis);
});
afterAll(async () => {
  await redis.quit();
});

let counter = 0;
function sample(overrides: Partial<Task> = {}): Task {
  counter += 1;
  const id = `T-${String(counter).padStart(6, "0")}` as TaskId;
  return {
    ...newTask({
      id,
      now: new Date(Date.UTC(2026, 0, 1, 0, counter)).toISOString(),
      requester: { userId: "U1" },
      channelId: "C1",
      threadTs: `1700000000.${String(counter).padStart(6, "0")}`,
      triggerTs: "1700000000.000001",
      source: "mention",
      text: "fix the login bug",
      repo: "acme/web",
      mode: "plan",
      attempts: 1,
    }),
    ...overrides,
  };
}

describe("Redis task store", () => {
  test("create then get returns the task at version 1", async () => {
    const store = createRedisTaskStore(redis, uniquePrefix());
    const task = sample();
    const created = await store.create(task);
    expect(created.version).toBe(1);
    expect(await store.get(task.id)).toEqual(created);
    await expect(store.create(task)).rejects.toThrow(/already exists/);
  });

  test("update is a compare-and-set on the version", async () => {
    const store = createRedisTaskStore(redis, uniquePrefix());
    const created = await store.create(sample());
    const updated = await store.update({ ...created, state: "planning" });
    expect(updated.version).toBe(2);
    // A writer still holding version 1 loses and can retry.
    await expect(store.update({ ...created, state: "failed" })).rejects.toBeInstanceOf(VersionConflictError);
    expect((await store.get(created.id))?.state).toBe("planning");
  });

  test("concurrent updates: exactly one of two writers at the same version wins", async () => {
    const store = createRedisTaskStore(redis, uniquePrefix());
    const created = await store.create(sample());
    const results = await Promise.allSettled([
      store.update({ ...created, state: "planning" }),
      store.update({ ...created, state: "cancelled" }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(1);
  });

  test("finds the active task of a thread, and not once it is terminal", async () => {
    const store = createRedisTaskStore(redis, uniquePrefix());
    const created = await store.create(sample());
    expect((await store.findActiveByThread("C1", created.threadTs))?.id).toBe(created.id);
    expect(await store.findActiveByThread("C1", "999.000")).toBeUndefined();
    await store.update({ ...created, state: "cancelled" });
    expect(await store.findActiveByThread("C1", created.threadTs)).toBeUndefined();
    expect((await store.listActive(10)).map((t) => t.id)).not.toContain(created.id);
  });

  test("indexes Baton's messages and lists tasks by user and channel, newest first", async () => {
    const store = createRedisTaskStore(redis, uniquePrefix());
    const a = await store.create(sample({ requester: { userId: "U7" }, channelId: "C7" }));
    const b = await store.create(sample({ requester: { userId: "U7" }, channelId: "C8" }));
    await store.indexMessage("C7", "1.2", a.id, "plan");
    expect(await store.findByMessage("C7", "1.2")).toEqual({ taskId: a.id, kind: "plan" });
    expect(await store.findByMessage("C7", "1.3")).toBeUndefined();
    expect((await store.listByUser("U7", 10)).map((t) => t.id)).toEqual([b.id, a.id]);
    expect((await store.listByChannel("C8", 10)).map((t) => t.id)).toEqual([b.id]);
    expect((await store.listActive(10)).map((t) => t.id)).toEqual([b.id, a.id]);
  });
});

describe("Redis claims", () => {
  test("a key is claimed once until released", async () => {
    const claims = createRedisClaims(redis, uniquePrefix());
    expect(await claims.claim("event:Ev1", 60)).toBe(true);
    expect(await claims.claim("event:Ev1", 60)).toBe(false);
    await claims.release("event:Ev1");
    expect(await claims.claim("event:Ev1", 60)).toBe(true);
  });

  test("parallel claims of one key: exactly one winner", async () => {
    const claims = createRedisClaims(redis, uniquePrefix());
    const answers = await Promise.all(Array.from({ length: 20 }, () => claims.claim("k", 60)));
    expect(answers.filter(Boolean)).toHaveLength(1);
  });
});

describe("eviction policy check", () => {
  test("passes on noeviction and names the policy otherwise", async () => {
    expect(await checkEvictionPolicy(redis)).toMatchObject({ ok: true, policy: "noeviction" });
    await redis.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru");
    try {
      const check = await checkEvictionPolicy(redis);
      expect(check.ok).toBe(false);
      expect(check.message).toContain("allkeys-lru");
    } finally {
      await redis.call("CONFIG", "SET", "maxmemory-policy", "noeviction");
    }
  });
});
