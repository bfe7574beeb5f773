// The plan tools: `update_plan` (the live checklist), `submit_plan` (ends a plan run), `finish`
// (ends an implement run) and the `apply_patch` wrapper.
import { z } from "zod";
import { PlanStep } from "../../shared/agent-events.js";
import { PatchError, applyPatch } from "./apply-patch.js";
import type { Tool } from "./types.js";

const UpdatePlanArgs = z.object({ steps: z.array(PlanStep).min(1).max(100) });

export const updatePlanTool: Tool<typeof UpdatePlanArgs> = {
  name: "update_plan",
  description:
    "Replace the visible checklist of your work: each step with status pending, in_progress or completed.",
  schema: UpdatePlanArgs,
  async run(args, host) {
    host.planUpdated(args.steps);
    return { output: "Plan updated." };
  },
};

const SubmitPlanArgs = z.object({
  summary: z.string().min(1).max(20_000).describe("What you will change and why, for the reviewer."),
  steps: z
    .array(z.string().min(1).max(2000))
    .min(1)
    .max(50)
    .describe("Ordered, concrete implementation steps."),
});

export const submitPlanTool: Tool<typeof SubmitPlanArgs> = {
  name: "submit_plan",
  description: "Submit your implementation plan for approval. This ends the planning run.",
  schema: SubmitPlanArgs,
  async run(args) {
    return {
      output: "Plan submitted.",
      terminal: { kind: "plan", summary: args.summary, steps: args.steps },
    };
  },
};

const FinishArgs = z.object({
  summary: z
    .string()
    .min(1)
    .max(20_000)
    .describe("What you changed and how you verified it; becomes the commit message and PR summary."),
});

export const finishTool: Tool<typeof FinishArgs> = {
  name: "finish",
  description:
    "Finish the work: call once the change is complete and the tests pass (or when no change is needed).",
  schema: FinishArgs,
  async run(args) {
    return { output: "Finished.", terminal: { kind: "finish", summary: args.summary } };
  },
};

const ApplyPatchArgs = z.object({
  patch: z
    .string()
    .min(1)
    .max(2_000_000)
    .describe("The whole patch, from '*** Begin Patch' to '*** End Patch'."),
});

export const applyPatchTool: Tool<typeof ApplyPatchArgs> = {
  name: "apply_patch",
  description: [
    "Edit files with a patch. Format:",
    "*** Begin Patch",
    "*** Add File: path/new.ts",
    "+line of the new file",
    "*** Update File: path/old.ts",
    "*** Move to: path/renamed.ts   (optional)",
    "@@ a line just before the change (optional, to locate it)",
    " unchanged context line",
    "-removed line",
    "+added line",
    "*** End of File   (optional: the chunk is at the end of the file)",
    "*** Delete File: path/gone.ts",
    "*** End Patch",
    "Paths are relative to the repository root. Give ~3 lines of context around each change.",
  ].join("\n"),
  schema: ApplyPatchArgs,
  async run(args, host) {
    try {
      const outcome = applyPatch(host.workspace, args.patch);
      host.filesChanged(outcome.changed);
      return { output: `Patch applied:\n${outcome.summary.join("\n")}` };
    } catch (error) {
      if (error instanceof PatchError)
        return { output: `Patch not applied: ${error.message}`, isError: true };
      throw error;
    }
  },
};
