// The outcome an agent posts to `POST /runner/v1/result` (CONTRACT §7).
import { z } from "zod";

/** One command the runner executed for the agent: the evidence. Recorded by the runner, not the model. */
export const EvidenceEntry = z.object({
  argv: z.array(z.string()).min(1),
  exitCode: z.number().int().nullable(),
  durationMs: z.number().nonnegative(),
  timedOut: z.boolean().optional(),
});
export type EvidenceEntry = z.infer<typeof EvidenceEntry>;

export const RunResult = z.discriminatedUnion("outcome", [
  z.object({
    outcome: z.literal("plan"),
    summary: z.string().max(20_000),
    steps: z.array(z.string().max(2000)).min(1).max(50),
    evidence: z.array(EvidenceEntry).max(5000),
  }),
  z.object({
    outcome: z.literal("changes"),
    summary: z.string().max(20_000),
    /** The head commit sha in the uploaded bundle. */
    headSha: z.string().regex(/^[0-9a-f]{40}$/),
    filesChanged: z.array(z.string()).max(10_000),
    evidence: z.array(EvidenceEntry).max(5000),
  }),
  z.object({
    outcome: z.literal("no_change"),
    summary: z.string().max(20_000),
    evidence: z.array(EvidenceEntry).max(5000),
  }),
]);
export type RunResult = z.infer<typeof RunResult>;
