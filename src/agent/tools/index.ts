// The tool set per phase (CONTRACT §8), the JSON schemas the model sees, and argument validation.
import { z } from "zod";
import type { RunPhase } from "../../shared/run-spec.js";
import { applyPatchTool, finishTool, submitPlanTool, updatePlanTool } from "./plan.js";
import { readFileTool } from "./read-file.js";
import { searchTool } from "./search.js";
import { shellTool } from "./shell.js";
import type { Tool, ToolHost, ToolResult } from "./types.js";

export type { Tool, ToolHost, ToolResult, Terminal, ToolName } from "./types.js";

/** Plan runs get the read-only tools and submit_plan; implement runs get all but submit_plan. */
export function toolsForPhase(phase: RunPhase): Tool[] {
  const readOnly: Tool[] = [shellTool, readFileTool, searchTool, updatePlanTool] as Tool[];
  return phase === "plan"
    ? [...readOnly, submitPlanTool as Tool]
    : [...readOnly, applyPatchTool as Tool, finishTool as Tool];
}

export interface FunctionToolSpec {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

/** OpenAI function-tool definitions, generated from the zod schemas (one source of truth). */
export function toolSpecs(tools: Tool[]): FunctionToolSpec[] {
  return tools.map((tool) => {
    const { $schema: _ignored, ...parameters } = z.toJSONSchema(tool.schema, { io: "input" }) as Record<
      string,
      unknown
    >;
    return { type: "function", function: { name: tool.name, description: tool.description, parameters } };
  });
}

/** Runs a tool call by name with raw JSON arguments; unknown tools and bad arguments are tool errors. */
export async function callTool(
  tools: Tool[],
  name: string,
  rawArguments: string,
  host: ToolHost,
): Promise<ToolResult> {
  const tool = tools.find((t) => t.name === name);
  if (tool === undefined) {
    return {
      output: `unknown tool ${JSON.stringify(name)}; available: ${tools.map((t) => t.name).join(", ")}`,
      isError: true,
    };
  }
  let parsed: unknown;
  try {
    parsed = rawArguments.trim() === "" ? {} : JSON.parse(rawArguments);
  } catch {
    return { output: `the arguments of ${name} are not valid JSON`, isError: true };
  }
  const args = tool.schema.safeParse(parsed);
  if (!args.success) {
    return { output: `invalid arguments for ${name}: ${z.prettifyError(args.error)}`, isError: true };
  }
  return await tool.run(args.data, host);
}
