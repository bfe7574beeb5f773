// The `read_file` tool: a file (or a line range of it) from the workspace, at most 10 KiB per call.
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { MAX_MODEL_OUTPUT_BYTES } from "../output.js";
import { PathError, resolveInWorkspace } from "../workspace.js";
import type { Tool } from "./types.js";

const MAX_READABLE_BYTES = 128 * 1024 * 1024;

const ReadFileArgs = z.object({
  path: z.string().min(1).describe("Path relative to the repository root."),
  start_line: z.number().int().positive().optional().describe("First line to show (1-based)."),
  end_line: z.number().int().positive().optional().describe("Last line to show (inclusive)."),
});

export const readFileTool: Tool<typeof ReadFileArgs> = {
  name: "read_file",
  description:
    "Read a text file of the repository, optionally a line range. At most 10 KiB per call; ask for the next range to continue.",
  schema: ReadFileArgs,
  async run(args, host) {
    let abs: string;
    try {
      abs = resolveInWorkspace(host.workspace, args.path);
    } catch (error) {
      if (error instanceof PathError) return { output: error.message, isError: true };
      throw error;
    }
    let size: number;
    try {
      const stat = statSync(abs);
      if (!stat.isFile()) return { output: `${args.path} is not a file`, isError: true };
      size = stat.size;
    } catch {
      return { output: `${args.path} does not exist`, isError: true };
    }
    if (size > MAX_READABLE_BYTES)
      return { output: `${args.path} is too large to read (${size} bytes); use search`, isError: true };
    const text = readFileSync(abs, "utf8");
    const lines = text.split("\n");
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    const start = args.start_line ?? 1;
    const end = Math.min(args.end_line ?? lines.length, lines.length);
    if (start > lines.length) return { output: `${args.path} has only ${lines.length} lines`, isError: true };
    if (end < start) return { output: "end_line is before start_line", isError: true };
    const budget = MAX_MODEL_OUTPUT_BYTES - 256;
    const shown: string[] = [];
    let bytes = 0;
    let last = start - 1;
    for (let n = start; n <= end; n++) {
      const line = lines[n - 1]!;
      const cost = Buffer.byteLength(line, "utf8") + 1;
      if (bytes + cost > budget) {
        if (shown.length === 0) shown.push(`${line.slice(0, budget)} [line cut]`);
        if (shown.length === 1 && last === start - 1) last = n;
        break;
      }
      shown.push(line);
      bytes += cost;
      last = n;
    }
    const header = `${args.path}: lines ${start}-${last} of ${lines.length}`;
    const more = last < end ? `\n[… stopped at 10 KiB; continue with start_line=${last + 1}]` : "";
    return { output: `${header}\n${shown.join("\n")}${more}` };
  },
};
