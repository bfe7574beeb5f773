// The `shell` tool: runs an argv (no shell unless the model asks for one) in the workspace with the
// allow-listed environment, a timeout that kills the process group, output streamed to a file and
// at most 10 KiB (head + tail) shown to the model. Every run is recorded as evidence.
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { HeadTailBuffer, MAX_MODEL_OUTPUT_BYTES } from "../output.js";
import { runProcess } from "../process.js";
import { PathError, resolveInWorkspace, toRelative } from "../workspace.js";
import type { Tool } from "./types.js";

export const DEFAULT_SHELL_TIMEOUT_MS = 300_000;
export const MAX_SHELL_TIMEOUT_MS = 1_800_000;
/** Full outputs are kept on disk up to this size; the rest is only counted. */
const MAX_OUTPUT_FILE_BYTES = 64 * 1024 * 1024;
/** Room for the header line(s) so the whole tool result stays within 10 KiB. */
const HEADER_ROOM = 512;
const TAIL_FOR_EVENT = 2_048;

const ShellArgs = z.object({
  command: z
    .array(z.string())
    .min(1)
    .max(1000)
    .describe('The program and its arguments, e.g. ["npm", "test"] or ["bash", "-lc", "ls | wc -l"].'),
  workdir: z.string().optional().describe("Folder relative to the repository root; default the root."),
  timeout_ms: z.number().int().positive().max(MAX_SHELL_TIMEOUT_MS).optional().describe("Default 300000."),
});

let sequence = 0;

export const shellTool: Tool<typeof ShellArgs> = {
  name: "shell",
  description:
    "Run a command in the repository (argv array, no implicit shell). The environment holds no credentials. " +
    "You see at most 10 KiB of combined stdout/stderr (head and tail); the full output is saved to a file you can read_file or search.",
  schema: ShellArgs,
  async run(args, host) {
    let cwd: string;
    try {
      cwd = args.workdir === undefined ? host.workspace : resolveInWorkspace(host.workspace, args.workdir);
    } catch (error) {
      if (error instanceof PathError) return { output: error.message, isError: true };
      throw error;
    }
    const remaining = host.remainingMs();
    const timeoutMs = Math.max(1, Math.min(args.timeout_ms ?? DEFAULT_SHELL_TIMEOUT_MS, remaining));
    mkdirSync(host.outputDir, { recursive: true });
    sequence += 1;
    const outputFile = path.join(host.outputDir, `cmd-${process.pid}-${sequence}.log`);
    const fd = openSync(outputFile, "w");
    let written = 0;
    const view = new HeadTailBuffer(Math.floor((MAX_MODEL_OUTPUT_BYTES - HEADER_ROOM) / 2));
    let result;
    try {
      result = await runProcess(args.command, {
        cwd,
        env: host.env,
        timeoutMs,
        signal: host.signal,
        onOutput: (chunk) => {
          view.push(chunk);
          if (written < MAX_OUTPUT_FILE_BYTES) {
            const part = chunk.subarray(0, MAX_OUTPUT_FILE_BYTES - written);
            writeSync(fd, part);
            written += part.length;
          }
        },
      });
    } finally {
      closeSync(fd);
    }
    const exitCode = result.spawnError !== undefined ? 127 : result.exitCode;
    // Stopped because the run's wall clock ran out: that is a timeout too, for the evidence.
    const timedOut = result.timedOut || (result.aborted && host.remainingMs() <= 0);
    host.commandFinished({
      argv: [...args.command],
      exitCode,
      durationMs: result.durationMs,
      outputTail: result.spawnError ?? view.lastBytes(TAIL_FOR_EVENT),
      timedOut,
    });
    const seconds = (result.durationMs / 1000).toFixed(1);
    const status = result.spawnError
      ? `error: ${result.spawnError}`
      : result.timedOut
        ? `timed out after ${timeoutMs} ms; the process group was killed`
        : result.aborted
          ? "aborted: the run is stopping"
          : `exit code ${exitCode ?? "none (killed by a signal)"}`;
    const where =
      view.totalBytes > 0
        ? `; full output (${view.totalBytes} bytes) in ${toRelative(host.workspace, outputFile)}`
        : "";
    const output = `${status} after ${seconds} s${where}\n${view.render()}`;
    return { output, isError: exitCode !== 0 };
  },
};
