// Local executor: runs `baton agent` as a child process on this host (Executor port). Each run gets
// its own workspace under <dataDir>/workspaces/<runId> (also its HOME), an environment of exactly
// PATH, HOME, LANG, BATON_RUNNER_URL and BATON_RUN_TOKEN_FILE (the token in a 0600 file the agent deletes), and its own process group, killed as a
// whole on cancel or deadline. A record in Redis (pid, host, process start time) lets another worker
// on the same host re-attach to a live process instead of launching a second one. The agent runs
// under a tiny `sh` wrapper that writes its exit code to a file, so a worker that did not spawn it
// can still tell success from failure.
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  readSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { ExecutionStatus, Executor, ExecutorRun, LaunchRequest } from "../../core/ports/executor.js";
import type { Logger } from "../../shared/logger.js";
import { AGENT_ENV } from "../../shared/runner-api.js";
import type { Redis } from "../redis/connection.js";

export interface LocalExecutorOptions {
  redis: Redis;
  prefix: string;
  /** BATON_DATA_DIR: workspaces and logs live under it. */
  dataDir: string;
  /** The agent command; default `[process.execPath, <package>/bin/baton.js, "agent"]`. */
  command?: string[];
  /** PATH handed to the agent (the composition root passes the bot's own PATH). */
  pathEnv: string;
  lang?: string;
  logger: Logger;
  /** Defaults to os.hostname(); records of other hosts are never signalled from here. */
  host?: string;
  pollMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping a run. */
  killGraceMs?: number;
  /** Bytes of the agent's output kept for diagnosis. */
  logTailBytes?: number;
  /** Remove a run's workspace once it has ended (default true). */
  cleanWorkspaces?: boolean;
}

/** `<package root>/bin/baton.js` whether this file runs from src/ (tests) or dist/ (built). */
export function defaultAgentCommand(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [process.execPath, resolve(here, "../../../bin/baton.js"), "agent"];
}

const RUN_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,100}$/;
const RECORD_TTL_SECONDS = 7 * 24 * 3600;

// The wrapper: run the agent, write its exit code where any worker on the host can read it.
const WRAPPER = 'f="$1"; shift; "$@"; code=$?; echo "$code" > "$f"; exit "$code"';

const LocalRecord = z.object({
  host: z.string(),
  pid: z.coerce.number().int().optional(),
  procStart: z.string().optional(),
  startedAt: z.coerce.number().optional(),
  deadlineAt: z.coerce.number().optional(),
  timeoutSeconds: z.coerce.number().optional(),
  workspace: z.string().optional(),
  logFile: z.string().optional(),
  exitFile: z.string().optional(),
  taskId: z.string().optional(),
  exitCode: z.coerce.number().int().optional(),
  signal: z.string().optional(),
  cancelled: z.string().optional(),
  deadlineHit: z.string().optional(),
  spawnError: z.string().optional(),
});
type LocalRecord = z.infer<typeof LocalRecord>;

/** "30 minutes", "1 minute", "45 seconds": for messages in the thread. */
export function describeDuration(seconds: number): string {
  if (seconds >= 60) {
    const minutes = Math.round(seconds / 60);
    return `${minutes} minute${minutes === 1 ? "" : "s"}`;
  }
  const whole = Math.max(1, Math.round(seconds));
  return `${whole} second${whole === 1 ? "" : "s"}`;
}

/** Start time of a process from /proc (Linux): guards against a recycled pid. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19];
  } catch {
    return undefined;
  }
}

function isAlive(pid: number, procStart: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone. EPERM: the pid belongs to someone else now, so it is not our agent.
    return false;
  }
  if (procStart === undefined) return true;
  const now = processStartTime(pid);
  return now === undefined || now === procStart;
}

function readTail(file: string | undefined, bytes: number): string | undefined {
  if (!file || !existsSync(file)) return undefined;
  try {
    const size = statSync(file).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    const fd = openSync(file, "r");
    try {
      readSync(fd, buffer, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    return buffer.toString("utf8");
  } catch {
    return undefined;
  }
}

function readExitFile(file: string | undefined): number | undefined {
  if (!file || !existsSync(file)) return undefined;
  const code = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
  return Number.isInteger(code) ? code : undefined;
}

export function createLocalExecutor(options: LocalExecutorOptions): Executor {
  const { redis, prefix, logger } = options;
  const host = options.host ?? hostname();
  const command = options.command ?? defaultAgentCommand();
  const killGraceMs = options.killGraceMs ?? 5_000;
  const tailBytes = options.logTailBytes ?? 8_192;
  const cleanWorkspaces = options.cleanWorkspaces ?? true;
  const recordKey = (runId: string) => `${prefix}local:run:${runId}`;
  const hostKey = `${prefix}local:runs:${host}`;
  const deadlineTimers = new Map<string, NodeJS.Timeout>();
  const killTimers = new Set<NodeJS.Timeout>();
  const stopWatchers = new Set<() => void>();

  if (command.length === 0) throw new Error("local executor: the agent command is empty");

  const readRecord = async (runId: string): Promise<LocalRecord | undefined> => {
    const raw = await redis.hgetall(recordKey(runId));
    if (!raw.host) return undefined;
    const parsed = LocalRecord.safeParse(raw);
    return parsed.success ? parsed.data : undefined;
  };

  const killGroup = (pid: number, procStart: string | undefined) => {
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        // Already gone.
      }
    };
    if (!isAlive(pid, procStart)) return;
    signal("SIGTERM");
    const timer = setTimeout(() => {
      killTimers.delete(timer);
      if (isAlive(pid, procStart)) signal("SIGKILL");
    }, killGraceMs);
    timer.unref();
    killTimers.add(timer);
  };

  const armDeadline = (runId: string, record: LocalRecord) => {
    if (
      deadlineTimers.has(runId) ||
      record.host !== host ||
      record.pid === undefined ||
      record.deadlineAt === undefined
    )
      return;
    const pid = record.pid;
    const fire = () => {
      deadlineTimers.delete(runId);
      void (async () => {
        const current = await readRecord(runId).catch(() => undefined);
        if (!current || current.exitCode !== undefined || readExitFile(current.exitFile) !== undefined)
          return;
        if (!isAlive(pid, current.procStart)) return;
        logger.warn({ runId, taskId: current.taskId }, "local run hit its deadline; stopping it");
        await redis.hset(recordKey(runId), "deadlineHit", "1").catch(() => undefined);
        killGroup(pid, current.procStart);
      })();
    };
    const timer = setTimeout(fire, Math.max(0, record.deadlineAt - Date.now()));
    timer.unref();
    deadlineTimers.set(runId, timer);
  };

  const statusOf = async (runId: string, record: LocalRecord | undefined): Promise<ExecutionStatus> => {
    if (!record) return { state: "gone" };
    if (record.spawnError) {
      return {
        state: "failed",
        reason: "Error",
        message: `The agent could not be started: ${record.spawnError}`,
      };
    }
    let exitCode = record.exitCode;
    let ended = exitCode !== undefined || record.signal !== undefined;
    if (!ended && record.host !== host) {
      // Another host's process: its own worker follows it; trust the record.
      return record.pid === undefined
        ? { state: "pending", message: "starting on another host" }
        : { state: "running" };
    }
    if (!ended) {
      if (record.pid === undefined) {
        // Claimed but never spawned for a while: the launching worker died in between.
        const age = Date.now() - (record.startedAt ?? 0);
        return age < 30_000 ? { state: "pending", message: "starting" } : lostStatus(record);
      }
      if (isAlive(record.pid, record.procStart)) {
        armDeadline(runId, record);
        return { state: "running" };
      }
      exitCode = readExitFile(record.exitFile);
      ended = exitCode !== undefined;
      if (!ended) return lostStatus(record);
    }
    const logTail = readTail(record.logFile, tailBytes);
    const tail = logTail ? { logTail } : {};
    if (record.cancelled === "1") {
      return {
        state: "failed",
        ...(exitCode !== undefined ? { exitCode } : {}),
        reason: "Cancelled",
        message: "The run was cancelled.",
        ...tail,
      };
    }
    if (record.deadlineHit === "1") {
      return {
        state: "failed",
        ...(exitCode !== undefined ? { exitCode } : {}),
        reason: "DeadlineExceeded",
        message: `The run hit its time limit of ${describeDuration(record.timeoutSeconds ?? 0)}.`,
        ...tail,
      };
    }
    if (exitCode === 0) return { state: "succeeded", exitCode: 0 };
    const how =
      exitCode !== undefined
        ? `exited with code ${exitCode}`
        : `was killed by ${record.signal ?? "a signal"}`;
    return {
      state: "failed",
      ...(exitCode !== undefined ? { exitCode } : {}),
      reason: "Error",
      message: `The agent process ${how}.`,
      ...tail,
    };
  };

  const lostStatus = (record: LocalRecord): ExecutionStatus => {
    const logTail = readTail(record.logFile, tailBytes);
    return {
      state: "failed",
      reason: "Lost",
      message: "The agent process ended without an exit status (the worker that started it was gone).",
      ...(logTail ? { logTail } : {}),
    };
  };

  const cleanup = async (runId: string, record: LocalRecord | undefined, status: ExecutionStatus) => {
    if (!record || record.host !== host) return;
    if (status.state !== "succeeded" && status.state !== "failed") return;
    const timer = deadlineTimers.get(runId);
    if (timer) clearTimeout(timer);
    deadlineTimers.delete(runId);
    // Ended runs leave the host's list (the record itself stays for status() and diagnosis).
    await redis.srem(hostKey, runId);
    if (cleanWorkspaces && record.workspace) rmSync(record.workspace, { recursive: true, force: true });
  };

  const status = async (runId: string): Promise<ExecutionStatus> => {
    const record = await readRecord(runId);
    const result = await statusOf(runId, record);
    await cleanup(runId, record, result);
    return result;
  };

  return {
    kind: "local",

    async launch(request: LaunchRequest) {
      if (!RUN_ID_PATTERN.test(request.runId))
        throw new Error(`local executor: invalid run id ${request.runId}`);
      const key = recordKey(request.runId);
      // The claim: exactly one launcher per run id, whatever happens afterwards.
      const claimed = await redis.hsetnx(key, "host", host);
      if (claimed !== 1) {
        const record = await readRecord(request.runId);
        if (record) armDeadline(request.runId, record);
        return "already_launched";
      }
      const workspace = join(options.dataDir, "workspaces", request.runId);
      const logsDir = join(options.dataDir, "logs");
      const logFile = join(logsDir, `${request.runId}.log`);
      const exitFile = join(logsDir, `${request.runId}.exit`);
      const startedAt = Date.now();
      const deadlineAt = startedAt + request.timeoutSeconds * 1000;
      await redis
        .multi()
        .hset(key, {
          taskId: request.taskId,
          startedAt: String(startedAt),
          deadlineAt: String(deadlineAt),
          timeoutSeconds: String(request.timeoutSeconds),
          workspace,
          logFile,
          exitFile,
        })
        .expire(key, RECORD_TTL_SECONDS)
        .sadd(hostKey, request.runId)
        .exec();
      try {
        mkdirSync(workspace, { recursive: true, mode: 0o700 });
        mkdirSync(logsDir, { recursive: true, mode: 0o700 });
        rmSync(exitFile, { force: true });
      } catch (error) {
        await redis.hset(key, "spawnError", (error as Error).message);
        throw error;
      }
      // The token goes in a private file the agent reads and deletes at start, never in an
      // environment: /proc/<pid>/environ of this process tree is readable by the agent's tools.
      const tokenDir = mkdtempSync(join(logsDir, `${request.runId}-token-`));
      const tokenFile = join(tokenDir, "token");
      writeFileSync(tokenFile, request.runToken, { mode: 0o600 });
      const env: Record<string, string> = {
        PATH: options.pathEnv,
        HOME: workspace,
        LANG: options.lang ?? "C.UTF-8",
        [AGENT_ENV.runnerUrl]: request.runnerUrl,
        [AGENT_ENV.runTokenFile]: tokenFile,
      };
      const logFd = openSync(logFile, "a", 0o600);
      let child;
      try {
        child = spawn("/bin/sh", ["-c", WRAPPER, "baton-agent", exitFile, ...command], {
          cwd: workspace,
          env,
          detached: true,
          stdio: ["ignore", logFd, logFd],
        });
      } finally {
        closeSync(logFd);
      }
      const pid = child.pid;
      if (pid === undefined) {
        const message = await new Promise<string>((done) => child.once("error", (e) => done(e.message)));
        await redis.hset(key, "spawnError", message);
        throw new Error(`local executor: cannot start the agent: ${message}`);
      }
      child.on("error", (error) =>
        logger.warn({ runId: request.runId, err: error }, "local agent process error"),
      );
      child.once("exit", (code, signal) => {
        const fields: Record<string, string> =
          code !== null ? { exitCode: String(code) } : { signal: signal ?? "unknown" };
        redis
          .hset(key, fields)
          .catch((error: unknown) =>
            logger.warn({ runId: request.runId, err: error }, "recording agent exit"),
          );
      });
      child.unref();
      const procStart = processStartTime(pid);
      await redis.hset(key, { pid: String(pid), ...(procStart ? { procStart } : {}) });
      logger.info({ runId: request.runId, taskId: request.taskId, pid }, "local agent started");
      armDeadline(request.runId, { host, pid, deadlineAt, ...(procStart ? { procStart } : {}) });
      return "launched";
    },

    status,

    watch(onStatus) {
      const last = new Map<string, string>();
      let stopped = false;
      const tick = async () => {
        const runIds = await redis.smembers(hostKey);
        for (const runId of runIds) {
          if (stopped) return;
          const record = await readRecord(runId);
          if (!record) {
            await redis.srem(hostKey, runId);
            continue;
          }
          const current = await statusOf(runId, record);
          const fingerprint = JSON.stringify({
            s: current.state,
            r: "reason" in current ? current.reason : undefined,
          });
          if (last.get(runId) !== fingerprint) {
            last.set(runId, fingerprint);
            onStatus({ runId, taskId: record.taskId ?? "", status: current });
          }
          if (current.state === "succeeded" || current.state === "failed") {
            await cleanup(runId, record, current);
            last.delete(runId);
          }
        }
      };
      const timer = setInterval(() => {
        tick().catch((error: unknown) => logger.debug({ err: error }, "local executor watch tick failed"));
      }, options.pollMs ?? 1_000);
      timer.unref();
      const stop = () => {
        stopped = true;
        clearInterval(timer);
        stopWatchers.delete(stop);
      };
      stopWatchers.add(stop);
      return stop;
    },

    async cancel(runId) {
      const record = await readRecord(runId);
      if (!record) return;
      await redis.hset(recordKey(runId), "cancelled", "1");
      if (record.host !== host || record.pid === undefined) return;
      killGroup(record.pid, record.procStart);
    },

    async list(): Promise<ExecutorRun[]> {
      const runIds = await redis.smembers(hostKey);
      const runs: ExecutorRun[] = [];
      for (const runId of runIds) {
        const record = await readRecord(runId);
        if (!record) {
          await redis.srem(hostKey, runId);
          continue;
        }
        runs.push({ runId, taskId: record.taskId ?? "", status: await statusOf(runId, record) });
      }
      return runs;
    },

    async ready() {
      return true;
    },

    async close() {
      // Runs keep running: another worker on this host re-attaches to them.
      for (const stop of [...stopWatchers]) stop();
      for (const timer of deadlineTimers.values()) clearTimeout(timer);
      deadlineTimers.clear();
      for (const timer of killTimers) clearTimeout(timer);
      killTimers.clear();
    },
  };
}
