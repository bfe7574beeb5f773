// The run spec: what `GET /runner/v1/run` returns to an agent (CONTRACT §7). Shared by both sides.
import { z } from "zod";

export const RunPhase = z.enum(["plan", "implement"]);
export type RunPhase = z.infer<typeof RunPhase>;

export const ThreadMessage = z.object({
  /** Slack user id of the author, or "bot:<name>" for other bots. */
  author: z.string(),
  text: z.string(),
  ts: z.string(),
});
export type ThreadMessage = z.infer<typeof ThreadMessage>;

export const RunSpec = z.object({
  runId: z.string(),
  taskId: z.string(),
  phase: RunPhase,
  /** 1-based attempt number; 1 unless best-of-N. */
  attempt: z.number().int().min(1),
  /** Implement round: 1 for the first implementation, +1 for each follow-up. */
  round: z.number().int().min(1).default(1),
  repository: z.object({
    fullName: z.string(),
    /** Points at the runner's read-only git proxy; authenticate with the run token as password. */
    cloneUrl: z.string().url(),
    baseBranch: z.string(),
    headBranch: z.string(),
    /** True when the head branch already exists upstream (a follow-up): check it out instead of branching. */
    headExists: z.boolean().default(false),
  }),
  request: z.object({
    text: z.string(),
    requester: z.string(),
  }),
  /** The Slack thread, oldest first, bounded; untrusted data. */
  thread: z.array(ThreadMessage),
  /** The approved plan, for implement runs. */
  plan: z
    .object({
      summary: z.string(),
      steps: z.array(z.string()),
    })
    .optional(),
  /** Follow-up instructions and plan feedback, oldest first. */
  followUps: z.array(z.string()).default([]),
  limits: z.object({
    maxSteps: z.number().int().positive(),
    maxTokens: z.number().int().positive(),
    wallClockMs: z.number().int().positive(),
  }),
  model: z.string(),
  /** Agent engine to use; "builtin" is the only one today. */
  engine: z.string().default("builtin"),
});
export type RunSpec = z.infer<typeof RunSpec>;
