// Test helpers for publishing: an in-memory TaskStore and BundleStore, an effect recorder, a task ready
// to publish, an agent-like workspace that commits with real git and writes a real bundle, and a
// logger whose output the test can read.
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import type { BundleStore } from "../../../src/core/ports/bundles.js";
import {
  VersionConflictError,
  type TaskMessageKind,
  type TaskStore,
} from "../../../src/core/ports/task-store.js";
import {
  headBranchFor,
  newTask,
  runIdFor,
  type AttemptResult,
  type Effect,
  type Task,
  type TaskId,
} from "../../../src/core/task.js";
import { createLogger, type Logger } from "../../../src/shared/logger.js";
import type { EffectRunner } from "../../../src/services/task-events.js";

export function memoryTaskStore(): TaskStore & { tasks: Map<TaskId, Task> } {
  const tasks = new Map<TaskId, Task>();
  const messages = new Map<string, { taskId: TaskId; kind: TaskMessageKind }>();
  const clone = (t: Task) => structuredClone(t);
  return {
    tasks,
    async create(task) {
      if (tasks.has(task.id)) throw new Error(`task ${task.id} exists`);
      const stored = { ...clone(task), version: 1 };
      tasks.set(task.id, stored);
      return clone(stored);
    },
    async get(id) {
      const t = tasks.get(id);
      return t ? clone(t) : undefined;
    },
    async update(next) {
      const current = tasks.get(next.id);
      if (!current || current.version !== next.version) throw new VersionConflictError(next.id);
      const stored = { ...clone(next), version: next.version + 1 };
      tasks.set(next.id, stored);
      return clone(stored);
    },
    async findActiveByThread() {
      return undefined;
    },
    async indexMessage(channelId, ts, taskId, kind) {
      messages.set(`${channelId}:${ts}`, { taskId, kind });
    },
    async findByMessage(channelId, ts) {
      return messages.get(`${channelId}:${ts}`);
    },
    async listByUser() {
      return [];
    },
    async listByChannel() {
      return [];
    },
    async listActive() {
      return [];
    },
  };
}

export function memoryBundles(): BundleStore & { data: Map<string, Buffer> } {
  const data = new Map<string, Buffer>();
  return {
    data,
    async put(runId, bundle) {
      data.set(runId, bundle);
    },
    async get(runId) {
      return data.get(runId);
    },
    async delete(runId) {
      data.delete(runId);
    },
  };
}

export function effectRecorder(): EffectRunner & { effects: Effect[] } {
  const effects: Effect[] = [];
  return {
    effects,
    async run(_task, list) {
      effects.push(...list);
    },
  };
}

/** A logger writing JSON lines into `text()`, at debug level so that everything is captured. */
export function capturedLogger(): { logger: Logger; text: () => string } {
  let out = "";
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString("utf8");
      done();
    },
  });
  return { logger: createLogger({ level: "debug", destination }), text: () => out };
}

export const NOW = new Date("2026-11-25T12:00:00.000Z");

export function implementResult(
  taskId: TaskId,
  input: { launch: number; headSha: string; files: string[]; headBranch?: string; summary?: string },
): AttemptResult {
  return {
    attempt: 1,
    runId: runIdFor(taskId, "implement", input.launch, 1),
    outcome: "changes",
    summary: input.summary ?? "Fix the login redirect loop\n\nThe session cookie was read before it was set.",
    headBranch: input.headBranch ?? headBranchFor(taskId),
    headSha: input.headSha,
    filesChanged: input.files,
    evidence: [
      { argv: ["npm", "test"], exitCode: 0, durationMs: 4200 },
      { argv: ["npx", "eslint", "."], exitCode: 0, durationMs: 900 },
    ],
    score: 1,
    testsPassed: true,
    failingCommands: 0,
  };
}

/** A task whose implement run (launch 1, attempt 1) has just ended with `result`: the moment publish runs. */
export function taskReadyToPublish(id: TaskId, result: AttemptResult, repo = "acme/web"): Task {
  const base = newTask({
    id,
    now: NOW.toISOString(),
    requester: { userId: "U01AAA", name: "Ada Lovelace" },
    channelId: "C01CHAN",
    threadTs: "1700000000.000100",
    triggerTs: "1700000000.000100",
    source: "mention",
    text: "fix the login redirect",
    repo,
    mode: "auto",
    attempts: 1,
  });
  return {
    ...base,
    state: "implementing",
    launch: 1,
    round: 1,
    runs: [{ runId: result.runId, phase: "implement", attempt: 1, launch: 1, status: "succeeded" }],
    plan: {
      summary: "Make the redirect wait for the session.",
      steps: ["Add a failing test", "Fix the cookie read"],
    },
    progress: {
      steps: [],
      usage: { promptTokens: 100_000, completionTokens: 23_456, cachedTokens: 0, costUsd: 0.42 },
    },
    attemptResults: [result],
  };
}

/** Moves a task with an open pull request to a finished follow-up run (launch 2) on the same branch. */
export function withFollowUp(task: Task, result: AttemptResult): Task {
  return {
    ...task,
    state: "implementing",
    launch: task.launch + 1,
    round: task.round + 1,
    runs: [
      ...task.runs,
      { runId: result.runId, phase: "implement", attempt: 1, launch: task.launch + 1, status: "succeeded" },
    ],
    attemptResults: [...task.attemptResults, result],
  };
}

export async function git(args: string[], cwd: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn("git", args, {
      cwd,
      env: {
        PATH: "/usr/local/bin:/usr/bin:/bin",
        HOME: cwd,
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_AUTHOR_NAME: "Baton Agent",
        GIT_AUTHOR_EMAIL: "agent@baton.invalid",
        GIT_COMMITTER_NAME: "Baton Agent",
        GIT_COMMITTER_EMAIL: "agent@baton.invalid",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`git ${args.join(" ")}: ${err}`)),
    );
  });
}

/** What an agent does: clone, branch (or continue the branch), commit files, bundle base..head. */
export class AgentWorkspace {
  private constructor(readonly dir: string) {}

  static async clone(bareRepoPath: string, branch: string, from: string): Promise<AgentWorkspace> {
    const dir = await mkdtemp(join(tmpdir(), "baton-agent-ws-"));
    await git(["clone", "--quiet", bareRepoPath, dir], dir);
    await git(["checkout", "--quiet", "-B", branch, `origin/${from}`], dir);
    return new AgentWorkspace(dir);
  }

  async commit(files: Record<string, string>, message = "Agent change"): Promise<string> {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(this.dir, path)), { recursive: true });
      await writeFile(join(this.dir, path), content);
    }
    await git(["add", "-A"], this.dir);
    await git(["commit", "--quiet", "-m", message], this.dir);
    return (await git(["rev-parse", "HEAD"], this.dir)).trim();
  }

  /** `git bundle create` of the branch, excluding what `since` (a ref or sha the upstream has) holds. */
  async bundle(branch: string, since: string): Promise<Buffer> {
    const file = join(this.dir, "..", `${this.dir.split("/").pop()}.bundle`);
    await git(["bundle", "create", "--quiet", file, `refs/heads/${branch}`, `^${since}`], this.dir);
    const data = await readFile(file);
    await rm(file, { force: true });
    return data;
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Polls `check` until it returns a value (not undefined) or the timeout passes. */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
