// The `search` tool: ripgrep over the workspace (grep when rg is not installed), bounded output.
import { z } from "zod";
import { HeadTailBuffer, MAX_MODEL_OUTPUT_BYTES } from "../output.js";
import { runProcess } from "../process.js";
import { PathError, resolveInWorkspace, toRelative } from "../workspace.js";
import type { Tool } from "./types.js";

const SEARCH_TIMEOUT_MS = 60_000;

const SearchArgs = z.object({
  pattern: z.string().min(1).max(2000).describe("A regular expression (ripgrep syntax)."),
  path: z
    .string()
    .optional()
    .describe("File or folder relative to the repository root; default the whole repository."),
});

export const searchTool: Tool<typeof SearchArgs> = {
  name: "search",
  description: "Search file contents with ripgrep; prints path:line:text for each match (at most 10 KiB).",
  schema: SearchArgs,
  async run(args, host) {
    let target: string;
    try {
      target =
        args.path === undefined
          ? "."
          : toRelative(host.workspace, resolveInWorkspace(host.workspace, args.path)) || ".";
    } catch (error) {
      if (error instanceof PathError) return { output: error.message, isError: true };
      throw error;
    }
    const view = new HeadTailBuffer(Math.floor((MAX_MODEL_OUTPUT_BYTES - 256) / 2));
    const common = {
      cwd: host.workspace,
      env: host.env,
      timeoutMs: Math.min(SEARCH_TIMEOUT_MS, host.remainingMs()),
      signal: host.signal,
      onOutput: (c: Buffer) => view.push(c),
    };
    let result = await runProcess(
      [
        "rg",
        "--line-number",
        "--no-heading",
        "--color",
        "never",
        "--hidden",
        "--glob",
        "!.git",
        "--max-columns",
        "400",
        "--max-columns-preview",
        "-e",
        args.pattern,
        "--",
        target,
      ],
      common,
    );
    if (result.spawnError !== undefined) {
      result = await runProcess(
        ["grep", "-rnIE", "--exclude-dir=.git", "-e", args.pattern, "--", target],
        common,
      );
    }
    if (result.spawnError !== undefined)
      return { output: `search is unavailable: ${result.spawnError}`, isError: true };
    if (result.timedOut)
      return { output: `search timed out; narrow the path or pattern\n${view.render()}`, isError: true };
    if (result.exitCode === 1 && view.totalBytes === 0) return { output: "no matches" };
    if (result.exitCode !== 0)
      return { output: `search failed (exit code ${result.exitCode}):\n${view.render()}`, isError: true };
    return { output: view.render() };
  },
};
