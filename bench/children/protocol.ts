// The messages between the benchmark runner and bench/children/bot.ts (validated on both sides).
import { z } from "zod";

export const ChildConfig = z.object({
  kind: z.enum(["baton", "bare"]),
  role: z.enum(["all", "bot", "worker"]).default("bot"),
  env: z.record(z.string(), z.string()),
});

export type ChildConfig = z.input<typeof ChildConfig>;

export const ChildMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready"), port: z.number() }),
  z.object({
    type: z.literal("stats"),
    rss: z.number(),
    heapUsed: z.number(),
    loopP50Ms: z.number(),
    loopP99Ms: z.number(),
    loopMaxMs: z.number(),
  }),
  z.object({ type: z.literal("stopped") }),
]);
export type ChildMessage = z.infer<typeof ChildMessage>;

export const ParentMessage = z.object({ type: z.enum(["stats", "reset", "stop"]) });
