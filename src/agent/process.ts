// Child processes for tools and git: own process group, killed as a group on timeout or abort, and
// output handed to a callback as it arrives (never buffered whole here).
import { spawn } from "node:child_process";

export interface ProcessOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Receives stdout and stderr chunks, interleaved as they arrive. */
  onOutput?: (chunk: Buffer) => void;
  stdin?: Buffer | string;
}

export interface ProcessResult {
  /** null when the process was killed by a signal or could not start. */
  exitCode: number | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  /** Set when the program could not be started (e.g. ENOENT). */
  spawnError?: string;
}

const KILL_GRACE_MS = 2_000;
const PIPE_DRAIN_MS = 1_000;

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export async function runProcess(argv: readonly string[], options: ProcessOptions): Promise<ProcessResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("empty argv");
  const started = Date.now();
  return await new Promise<ProcessResult>((resolve) => {
    let settled = false;
    let timedOut = false;
    let aborted = false;
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const finish = (result: Omit<ProcessResult, "durationMs" | "timedOut" | "aborted">): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(hardKill);
      options.signal?.removeEventListener("abort", onAbort);
      // Leftover background processes of the command die with it.
      killGroup(child.pid, "SIGKILL");
      resolve({ ...result, timedOut, aborted, durationMs: Date.now() - started });
    };
    let hardKill: NodeJS.Timeout | undefined;
    const stop = (): void => {
      killGroup(child.pid, "SIGTERM");
      hardKill = setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, options.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      stop();
    };
    if (options.signal?.aborted === true) onAbort();
    else options.signal?.addEventListener("abort", onAbort, { once: true });

    const forward = (chunk: Buffer): void => options.onOutput?.(chunk);
    child.stdout?.on("data", forward);
    child.stderr?.on("data", forward);
    if (options.stdin !== undefined && child.stdin !== null) {
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.stdin);
    }
    child.on("error", (error: NodeJS.ErrnoException) => {
      finish({
        exitCode: null,
        spawnError: error.code === "ENOENT" ? `command not found: ${file}` : error.message,
      });
    });
    let exitCode: number | null = null;
    child.on("exit", (code) => {
      exitCode = code;
      // A grandchild may hold the pipes open; do not wait for it forever.
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish({ exitCode });
      }, PIPE_DRAIN_MS).unref();
    });
    child.on("close", (code) => finish({ exitCode: code ?? exitCode }));
  });
}
