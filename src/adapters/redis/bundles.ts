// BundleStore on Redis: the git bundle an agent uploaded waits here for the publisher (any replica).
// Bundles are capped at MAX_BUNDLE_BYTES by the runner API and expire after a while.
import type { BundleStore } from "../../core/ports/bundles.js";
import { MAX_BUNDLE_BYTES } from "../../shared/runner-api.js";
import type { Redis } from "./connection.js";

const DEFAULT_TTL_SECONDS = 14 * 24 * 3600;

export function createRedisBundleStore(
  redis: Redis,
  prefix: string,
  options: { ttlSeconds?: number } = {},
): BundleStore {
  const key = (runId: string) => `${prefix}bundle:${runId}`;
  const ttl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  return {
    async put(runId, data) {
      if (data.length > MAX_BUNDLE_BYTES)
        throw new Error(`bundle of ${data.length} bytes is over the ${MAX_BUNDLE_BYTES} byte limit`);
      await redis.set(key(runId), data, "EX", ttl);
    },
    async get(runId) {
      const data = await redis.getBuffer(key(runId));
      return data ?? undefined;
    },
    async delete(runId) {
      await redis.del(key(runId));
    },
  };
}
