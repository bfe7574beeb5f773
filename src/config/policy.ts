// The policy file (`BATON_CONFIG`, YAML; CONTRACT §3). Unknown keys are errors.
import { z } from "zod";

const SlackUserId = z.string().regex(/^[UW][A-Z0-9]{2,}$/, "a Slack user id such as U01AAA");
const RepoName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9-]*\/[A-Za-z0-9._-]+$/, "a repository as owner/name");

export const ChannelPolicy = z.strictObject({
  repo: RepoName.optional(),
  mode: z.enum(["plan", "auto"]).optional(),
  watch: z.boolean().optional(),
  budgetUsdPerDay: z.number().positive().optional(),
});
export type ChannelPolicy = z.infer<typeof ChannelPolicy>;

export const RepoPolicy = z.strictObject({
  image: z.string().min(1).optional(),
  baseBranch: z.string().min(1).optional(),
  draft: z.boolean().optional(),
  protectedPaths: z.array(z.string().min(1)).optional(),
});
export type RepoPolicy = z.infer<typeof RepoPolicy>;

export const Limits = z.strictObject({
  concurrentRuns: z.number().int().positive().default(10),
  perUser: z.number().int().positive().default(3),
  perRepo: z.number().int().positive().default(5),
  maxAttempts: z.number().int().min(1).max(4).default(4),
  runTimeoutMinutes: z.number().positive().default(30),
  approvalTimeoutHours: z.number().positive().default(24),
  runTokenBudget: z.number().int().positive().default(2_000_000),
  /** Stop the other attempts of a best-of-N task once one passes its tests. */
  stopAttemptsOnFirstPass: z.boolean().default(false),
});
export type Limits = z.infer<typeof Limits>;

export const ModelPrice = z.strictObject({
  inputPerMTok: z.number().nonnegative(),
  outputPerMTok: z.number().nonnegative(),
  cachedInputPerMTok: z.number().nonnegative().optional(),
});
export type ModelPrice = z.infer<typeof ModelPrice>;

export const Policy = z.strictObject({
  access: z
    .strictObject({
      users: z.array(SlackUserId).default([]),
      approvers: z.array(SlackUserId).default([]),
      admins: z.array(SlackUserId).default([]),
    })
    .default({ users: [], approvers: [], admins: [] }),
  channels: z
    .record(z.string().regex(/^[CGD][A-Z0-9]{2,}$/, "a Slack channel id such as C01CHAN"), ChannelPolicy)
    .default({}),
  repos: z.record(RepoName, RepoPolicy).default({}),
  limits: Limits.default(Limits.parse({})),
  models: z.strictObject({ prices: z.record(z.string(), ModelPrice).default({}) }).default({ prices: {} }),
});
export type Policy = z.infer<typeof Policy>;

/** The policy when no file is configured: everyone allowed, no channel defaults. */
export const DEFAULT_POLICY: Policy = Policy.parse({});
