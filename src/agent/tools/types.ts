// What a tool is: a name, a zod schema for its arguments (also sent to the model as JSON schema),
// and a function from validated arguments to a result. Tool errors are results, not exceptions.
import type { z } from "zod";
import type { PlanStep } from "../../shared/agent-events.js";

/** What a tool may do besides computing its output: everything observable goes through here. */
export interface ToolHost {
  /** The repository checkout the tools work in. */
  readonly workspace: string;
  /** Where full shell outputs are written (inside the workspace's .git, never committed). */
  readonly outputDir: string;
  /** The allow-listed environment for commands. */
  readonly env: NodeJS.ProcessEnv;
  readonly signal: AbortSignal;
  /** Milliseconds left on the run's wall clock. */
  remainingMs(): number;
  /** The evidence: every command run for the model (argv, exit code, duration). */
  commandFinished(entry: {
    argv: string[];
    exitCode: number | null;
    durationMs: number;
    outputTail: string;
    timedOut: boolean;
  }): void;
  filesChanged(paths: string[]): void;
  planUpdated(steps: PlanStep[]): void;
}

/** A tool call that ends the run. */
export type Terminal =
  { kind: "plan"; summary: string; steps: string[] } | { kind: "finish"; summary: string };

export interface ToolResult {
  output: string;
  /** True when the output describes a failure the model should react to. */
  isError?: boolean;
  terminal?: Terminal;
}

export interface Tool<S extends z.ZodType = z.ZodType> {
  readonly name: ToolName;
  readonly description: string;
  readonly schema: S;
  run(args: z.infer<S>, host: ToolHost): Promise<ToolResult>;
}

export type ToolName =
  "shell" | "read_file" | "apply_patch" | "search" | "update_plan" | "submit_plan" | "finish";
