// Starts one redis-server for the whole test run; tests isolate themselves with unique key prefixes
// (see test/support/redis.ts). Fault tests that restart Redis start their own server.
// Jest loads global setup outside its ESM module mapper, hence the explicit .ts extension.
import { startRedisServer, type TestRedis } from "./redis-server.ts";

declare global {
  var __BATON_TEST_REDIS__: TestRedis | undefined;
}

export default async function globalSetup(): Promise<void> {
  const redis = await startRedisServer({ persistent: false });
  globalThis.__BATON_TEST_REDIS__ = redis;
  process.env.BATON_TEST_REDIS_URL = redis.url;
}
