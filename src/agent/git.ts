// Git for the agent: clone through the runner's read-only proxy (the run token travels as an HTTP
// header in the git process's environment for clone only, never in .git/config or a remote URL),
// check out the head branch, commit the work, and write the base..head bundle.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { runProcess } from "./process.js";

export class GitError extends Error {
  override readonly name = "GitError";
}

export const BATON_AUTHOR = { name: "Baton", email: "baton@users.noreply.github.com" } as const;
const GIT_TIMEOUT_MS = 10 * 60_000;
const MAX_CAPTURE = 16 * 1024 * 1024;

export interface GitRunOptions {
  stdin?: string;
  /** Extra environment (e.g. the auth header config) for this call only. */
  env?: NodeJS.ProcessEnv;
  allowFailure?: boolean;
  signal?: AbortSignal;
}

export class GitWorkspace {
  /** The base branch tip the work started from. */
  baseSha = "";
  /** HEAD right after checkout: commits after it are this run's work. */
  startSha = "";

  constructor(
    readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  async git(args: string[], options: GitRunOptions = {}): Promise<{ code: number | null; stdout: string }> {
    const chunks: Buffer[] = [];
    let size = 0;
    const result = await runProcess(["git", ...args], {
      cwd: this.dir,
      env: { ...this.env, ...options.env },
      timeoutMs: GIT_TIMEOUT_MS,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
      onOutput: (chunk) => {
        if (size < MAX_CAPTURE) chunks.push(chunk);
        size += chunk.length;
      },
    });
    const stdout = Buffer.concat(chunks).toString("utf8");
    if (result.spawnError !== undefined) throw new GitError(`git is not available: ${result.spawnError}`);
    if (result.exitCode !== 0 && options.allowFailure !== true) {
      throw new GitError(
        `git ${args[0] ?? ""} failed (exit ${result.exitCode ?? "signal"}${result.timedOut ? ", timed out" : ""}): ${stdout.slice(-2000).trim()}`,
      );
    }
    return { code: result.exitCode, stdout };
  }

  async revParse(ref: string): Promise<string> {
    return (await this.git(["rev-parse", "--verify", `${ref}^{commit}`])).stdout.trim();
  }
}

/** Git config passed through the environment, so the header never lands in argv or .git/config. */
function authEnv(token: string): NodeJS.ProcessEnv {
  const basic = Buffer.from(`baton:${token}`).toString("base64");
  return {
    GIT_CONFIG_COUNT: "1",
    GIT_CONFIG_KEY_0: "http.extraHeader",
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    GIT_TERMINAL_PROMPT: "0",
  };
}

export interface CloneOptions {
  cloneUrl: string;
  token: string;
  baseBranch: string;
  headBranch: string;
  headExists: boolean;
  /** Folder to clone into (must not exist or be empty). */
  dir: string;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

export async function cloneWorkspace(options: CloneOptions): Promise<GitWorkspace> {
  const parent = new GitWorkspace(path.dirname(options.dir), options.env);
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  await parent.git(["clone", "--no-checkout", "--origin", "origin", "--", options.cloneUrl, options.dir], {
    env: authEnv(options.token),
    ...signal,
  });
  const ws = new GitWorkspace(options.dir, options.env);
  // The remote URL is the proxy URL without credentials; make sure it stays that way.
  const remote = (await ws.git(["remote", "get-url", "origin"])).stdout.trim();
  if (remote.includes(options.token)) throw new GitError("the clone URL must not contain the run token");
  try {
    ws.baseSha = await ws.revParse(`refs/remotes/origin/${options.baseBranch}`);
  } catch {
    throw new GitError(`the base branch ${options.baseBranch} does not exist in ${options.cloneUrl}`);
  }
  if (options.headExists) {
    try {
      await ws.revParse(`refs/remotes/origin/${options.headBranch}`);
    } catch {
      throw new GitError(`the head branch ${options.headBranch} does not exist upstream`);
    }
    await ws.git(["checkout", "-B", options.headBranch, `refs/remotes/origin/${options.headBranch}`]);
  } else {
    await ws.git(["checkout", "-B", options.headBranch, ws.baseSha]);
  }
  ws.startSha = await ws.revParse("HEAD");
  // Lets the model's own `git commit` work; no credential is stored here.
  await ws.git(["config", "user.name", BATON_AUTHOR.name]);
  await ws.git(["config", "user.email", BATON_AUTHOR.email]);
  return ws;
}

/** Commits everything in the work tree (if anything) as Baton; hooks from the repository never run. */
export async function commitAll(ws: GitWorkspace, message: string): Promise<boolean> {
  await ws.git(["add", "--all"]);
  const diff = await ws.git(["diff", "--cached", "--quiet"], { allowFailure: true });
  if (diff.code === 0) return false;
  await ws.git(
    ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", "commit", "--no-verify", "--file", "-"],
    {
      stdin: message,
      env: {
        GIT_AUTHOR_NAME: BATON_AUTHOR.name,
        GIT_AUTHOR_EMAIL: BATON_AUTHOR.email,
        GIT_COMMITTER_NAME: BATON_AUTHOR.name,
        GIT_COMMITTER_EMAIL: BATON_AUTHOR.email,
      },
    },
  );
  return true;
}

/** The commit message: the summary's first line as subject (≤ 72 chars), the rest as body. */
export function commitMessage(summary: string, fallback: string): string {
  const text = summary.trim() === "" ? fallback : summary.trim();
  const [first = fallback, ...rest] = text.split("\n");
  const subject = first.length > 72 ? `${first.slice(0, 69).trimEnd()}...` : first;
  const body = (first.length > 72 ? [first, ...rest] : rest).join("\n").trim();
  return body === "" ? `${subject}\n` : `${subject}\n\n${body}\n`;
}

export async function changedFiles(ws: GitWorkspace, from: string): Promise<string[]> {
  const out = (await ws.git(["diff", "--name-only", "-z", from, "HEAD"])).stdout;
  return out.split("\0").filter((p) => p !== "");
}

/** Writes the bundle of base..head (the head branch ref) and returns its bytes. */
export async function createBundle(ws: GitWorkspace, headBranch: string, file: string): Promise<Buffer> {
  await ws.git(["bundle", "create", file, `refs/heads/${headBranch}`, `^${ws.baseSha}`]);
  if (statSync(file).size === 0) throw new GitError("git bundle wrote an empty file");
  return readFileSync(file);
}

/** Puts the work tree back exactly as it was checked out (plan runs change nothing). */
export async function resetToStart(ws: GitWorkspace): Promise<void> {
  await ws.git(["reset", "--hard", ws.startSha]);
  await ws.git(["clean", "-ffdx"]);
  const status = (await ws.git(["status", "--porcelain"])).stdout.trim();
  const head = await ws.revParse("HEAD");
  if (status !== "" || head !== ws.startSha)
    throw new GitError("the workspace could not be reset to its starting state");
}
