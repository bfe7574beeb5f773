import { startRedisServer } from "../test/support/redis-server.js";
import { benchB6, benchB7 } from "./agent.js";
import { benchB2, benchB3 } from "./notifier.js";
import { benchB1, benchB5 } from "./ingress.js";
const which = process.argv[2]!;
const redis = await startRedisServer({ persistent: false });
const ctx = { redisUrl: redis.url, log: (m: string) => console.error(m) };
const map: Record<string, (c: typeof ctx) => Promise<unknown>> = {
  B1: benchB1,
  B5: benchB5,
  B2: benchB2,
  B3: benchB3,
  B6: benchB6,
  B7: benchB7,
};
try {
  const out = (await map[which]!(ctx)) as { rows: unknown; invariants: unknown; details: unknown };
  console.log(JSON.stringify({ rows: out.rows, invariants: out.invariants, details: out.details }, null, 1));
} finally {
  await redis.close();
}
