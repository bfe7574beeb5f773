// Per-test access to the run's Redis: a unique key prefix per test keeps tests independent.
import { randomBytes } from "node:crypto";

export function testRedisUrl(): string {
  const url = process.env.BATON_TEST_REDIS_URL;
  if (!url) throw new Error("BATON_TEST_REDIS_URL is not set: run the tests through `npm test`");
  return url;
}

export function uniquePrefix(name = "t"): string {
  return `test:${name}:${randomBytes(4).toString("hex")}:`;
}
