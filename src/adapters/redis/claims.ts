// Idempotency claims on Redis: SET NX EX, the first caller for a key wins while the claim lives.
import type { Claims } from "../../core/ports/task-store.js";
import type { Redis } from "./connection.js";

export function createRedisClaims(redis: Redis, prefix: string): Claims {
  const key = (k: string) => `${prefix}claim:${k}`;
  return {
    async claim(k, ttlSeconds) {
      const answer = await redis.set(key(k), "1", "EX", Math.max(1, Math.ceil(ttlSeconds)), "NX");
      return answer === "OK";
    },
    async release(k) {
      await redis.del(key(k));
    },
  };
}
