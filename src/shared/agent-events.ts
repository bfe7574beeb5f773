// Events an agent posts to `POST /runner/v1/events` (CONTRACT §7), and the answer it gets back.
import { z } from "zod";

export const PlanStepStatus = z.enum(["pending", "in_progress", "completed"]);
export type PlanStepStatus = z.infer<typeof PlanStepStatus>;

export const PlanStep = z.object({ step: z.string().max(2000), status: PlanStepStatus });
export type PlanStep = z.infer<typeof PlanStep>;

export const Usage = z.object({
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative().default(0),
});
export type Usage = z.infer<typeof Usage>;

const base = { seq: z.number().int().nonnegative(), at: z.string().optional() };

export const AgentEvent = z.discriminatedUnion("type", [
  z.object({ ...base, type: z.literal("run.started") }),
  z.object({ ...base, type: z.literal("plan.updated"), steps: z.array(PlanStep).max(100) }),
  z.object({
    ...base,
    type: z.literal("command.finished"),
    argv: z.array(z.string()).min(1),
    exitCode: z.number().int().nullable(),
    durationMs: z.number().nonnegative(),
    outputTail: z.string().max(16_384).default(""),
    timedOut: z.boolean().optional(),
  }),
  z.object({ ...base, type: z.literal("files.changed"), paths: z.array(z.string()).max(10_000) }),
  z.object({ ...base, type: z.literal("message"), text: z.string().max(40_000) }),
  z.object({ ...base, type: z.literal("usage"), ...Usage.shape }),
  z.object({ ...base, type: z.literal("run.completed") }),
  z.object({
    ...base,
    type: z.literal("run.failed"),
    code: z.string(),
    message: z.string().max(10_000),
    retryable: z.boolean().default(false),
  }),
]);
export type AgentEvent = z.infer<typeof AgentEvent>;
export type AgentEventType = AgentEvent["type"];

export const PostEventsBody = z.object({ events: z.array(AgentEvent).max(1000) });
export type PostEventsBody = z.infer<typeof PostEventsBody>;

export const PostEventsAnswer = z.object({
  /** Highest seq the runner has recorded for this run. */
  acceptedSeq: z.number().int(),
  cancelled: z.boolean(),
  /** New thread messages for the agent since its last call (follow-ups while running). */
  messages: z.array(z.object({ author: z.string(), text: z.string(), ts: z.string() })),
});
export type PostEventsAnswer = z.infer<typeof PostEventsAnswer>;
