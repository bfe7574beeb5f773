// Trusted-side git: checks an agent's bundle and pushes it to its baton/* branch. Works in a cached bare
// repository per upstream repository under the data dir. The credential travels only as an
// `http.extraHeader` set through GIT_CONFIG_* environment variables: never in a URL, an argument, a
// config file or a log line.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import picomatch from "picomatch";
import type { GitRemote } from "../../core/ports/git-host.js";
import type { Logger } from "../../shared/logger.js";
import { MAX_BUNDLE_BYTES } from "../../shared/runner-api.js";
import { GitHubAccessError, GitHubUnavailableError } from "./errors.js";
import { parseRepo } from "./urls.js";

export type RefusalCode =
  | "not_baton_branch"
  | "bundle_too_large"
  | "invalid_bundle"
  | "not_fast_forward"
  | "no_commits"
  | "protected_path"
  | "base_missing";

/** The bundle may not be published, for a reason the requester can read. Nothing was pushed. */
export class PublishRefusedError extends Error {
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
    this.name = "PublishRefusedError";
  }
}

export interface PushBundleRequest {
  repo: string;
  remote: GitRemote;
  baseBranch: string;
  /** Always `baton/…`; anything else is refused. */
  headBranch: string;
  /** The head commit the run reported; the bundle must carry exactly this commit. */
  expectedHeadSha?: string;
  bundle: Buffer;
  protectedPaths: string[];
  /** Names temporary files and refs. */
  runId: string;
}

export type PushOutcome =
  | { status: "pushed"; headSha: string; previousSha?: string; branchFiles: string[] }
  /** The branch already points at this commit (a repeated publish): nothing was pushed. */
  | { status: "up_to_date"; headSha: string; branchFiles: string[] };

export interface BranchState {
  /** Where the head branch points on GitHub; undefined when it does not exist. */
  headSha?: string;
  /** Files the branch changes relative to the base branch (empty when it does not exist). */
  branchFiles: string[];
}

export interface GitPublisherOptions {
  dataDir: string;
  logger: Logger;
  /** `PATH` for git (default: the usual system folders). */
  path?: string;
  /** Extra environment for git (proxy and CA settings); GIT_* variables are ignored. */
  env?: Record<string, string>;
  /** Attempts for network operations on transient failures (default 3). */
  networkAttempts?: number;
  /** Base delay between network retries (default 1000 ms, doubling). */
  retryDelayMs?: number;
  maxBundleBytes?: number;
}

export interface GitPublisher {
  pushBundle(request: PushBundleRequest): Promise<PushOutcome>;
  /** Reads the head branch as GitHub has it (used when a bundle is gone but the branch may be pushed). */
  branchState(
    request: Pick<PushBundleRequest, "repo" | "remote" | "baseBranch" | "headBranch">,
  ): Promise<BranchState>;
}

interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
const LOCAL_TIMEOUT_MS = 120_000;
const NETWORK_TIMEOUT_MS = 15 * 60_000;

const tracking = (branch: string) => `refs/baton/upstream/${branch}`;

export function createGitPublisher(options: GitPublisherOptions): GitPublisher {
  const locks = new Map<string, Promise<unknown>>();
  const networkAttempts = options.networkAttempts ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const maxBundleBytes = options.maxBundleBytes ?? MAX_BUNDLE_BYTES;
  const home = join(options.dataDir, "git-home");

  const baseEnv = (): Record<string, string> => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.env ?? {})) if (!k.startsWith("GIT_")) env[k] = v;
    return {
      ...env,
      PATH: options.path ?? "/usr/local/bin:/usr/bin:/bin",
      // A private HOME and no system config: no user credential helper, no url.insteadOf rewrites.
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_TERMINAL_PROMPT: "0",
      GIT_ASKPASS: "",
      SSH_ASKPASS: "",
      LC_ALL: "C",
    };
  };

  async function git(
    args: string[],
    opts: { cwd?: string; remote?: GitRemote; timeoutMs?: number; allowFail?: boolean } = {},
  ): Promise<GitResult> {
    const env = baseEnv();
    if (opts.remote) {
      const settings: [string, string][] = [
        ["http.extraHeader", `Authorization: ${opts.remote.authorization}`],
        ["credential.helper", ""],
        // The header must never follow a redirect to another host.
        ["http.followRedirects", "false"],
      ];
      env.GIT_CONFIG_COUNT = String(settings.length);
      settings.forEach(([key, value], i) => {
        env[`GIT_CONFIG_KEY_${i}`] = key;
        env[`GIT_CONFIG_VALUE_${i}`] = value;
      });
    }
    const result = await new Promise<GitResult>((resolve, reject) => {
      const child = spawn("git", args, { cwd: opts.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
      const out: Buffer[] = [];
      let outBytes = 0;
      let err = "";
      const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? LOCAL_TIMEOUT_MS);
      child.stdout.on("data", (chunk: Buffer) => {
        outBytes += chunk.length;
        if (outBytes <= MAX_OUTPUT_BYTES) out.push(chunk);
        else child.kill("SIGKILL");
      });
      child.stderr.on("data", (chunk: Buffer) => {
        if (err.length < 64_000) err += chunk.toString("utf8");
      });
      child.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 137 : 1), stdout: Buffer.concat(out), stderr: err });
      });
    });
    const redacted = { ...result, stderr: redact(result.stderr, opts.remote) };
    if (result.code !== 0 && !opts.allowFail) {
      throw new GitCommandError(
        `git ${args[0]} failed (exit ${result.code}): ${lastLines(redacted.stderr)}`,
        redacted,
      );
    }
    return redacted;
  }

  /** Network commands: retried on transient failures (5xx, connection problems), classified otherwise. */
  async function gitNetwork(
    args: string[],
    cwd: string,
    remote: GitRemote,
    what: string,
  ): Promise<GitResult> {
    for (let attempt = 1; ; attempt++) {
      const result = await git(args, { cwd, remote, timeoutMs: NETWORK_TIMEOUT_MS, allowFail: true });
      if (result.code === 0) return result;
      const stderr = result.stderr;
      if (
        /returned error: 40[134]|Authentication failed|could not read Username|Repository not found/i.test(
          stderr,
        )
      ) {
        throw new GitHubAccessError(
          `GitHub refused ${what}: check Baton's GitHub credential and its access to the repository`,
          undefined,
          lastLines(stderr),
        );
      }
      const transient =
        /returned error: 5\d\d|Could not resolve host|Connection refused|Connection reset|timed out|Empty reply|early EOF|unexpected disconnect|remote end hung up/i.test(
          stderr,
        );
      if (!transient) return result;
      if (attempt >= networkAttempts) {
        throw new GitHubUnavailableError(
          `GitHub did not answer while ${what} (${attempt} attempts)`,
          undefined,
          lastLines(stderr),
        );
      }
      options.logger.warn(
        { attempt, what, stderr: lastLines(stderr) },
        "git network operation failed; retrying",
      );
      await new Promise((r) => setTimeout(r, retryDelayMs * 2 ** (attempt - 1)));
    }
  }

  async function ensureWorkRepo(repo: string): Promise<string> {
    const { owner, name } = parseRepo(repo);
    const dir = join(options.dataDir, "publish", owner.toLowerCase(), `${name.toLowerCase()}.git`);
    if (!existsSync(join(dir, "HEAD"))) {
      await mkdir(dir, { recursive: true });
      await git(["init", "--bare", "--quiet", dir]);
    }
    await mkdir(join(dir, "baton-tmp"), { recursive: true });
    return dir;
  }

  async function isAncestor(cwd: string, ancestor: string, descendant: string): Promise<boolean> {
    const r = await git(["merge-base", "--is-ancestor", ancestor, descendant], { cwd, allowFail: true });
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw new GitCommandError(`git merge-base failed: ${lastLines(r.stderr)}`, r);
  }

  async function touchedFiles(cwd: string, from: string, to: string): Promise<string[]> {
    const files = new Set<string>();
    // Every commit's own changes (a file changed and changed back still counts) ...
    const log = await git(
      ["log", "--format=", "--name-only", "--no-renames", "--diff-merges=combined", "-z", to, "--not", from],
      { cwd },
    );
    // ... and the net change from where the branch left off.
    const base = (await git(["merge-base", from, to], { cwd })).stdout.toString().trim();
    const diff = await git(["diff", "--name-only", "--no-renames", "-z", base, to], { cwd });
    for (const chunk of [log.stdout, diff.stdout]) {
      for (const path of chunk.toString("utf8").split("\0")) {
        const p = path.trim();
        if (p) files.add(p);
      }
    }
    return [...files].sort();
  }

  /** Tracking refs of head branches are dropped after use, so the work repository does not grow a ref per task. */
  async function forgetHead(cwd: string, head: string): Promise<void> {
    await git(["update-ref", "-d", tracking(head)], { cwd, allowFail: true });
  }

  /** Learns where base and head point on GitHub and fetches them into the work repository. */
  async function fetchBranches(
    cwd: string,
    req: Pick<PushBundleRequest, "repo" | "remote" | "baseBranch" | "headBranch">,
  ): Promise<{ baseTip: string; oldHead?: string }> {
    const head = req.headBranch;
    const heads = await gitNetwork(
      ["ls-remote", "--heads", req.remote.url, `refs/heads/${req.baseBranch}`, `refs/heads/${head}`],
      cwd,
      req.remote,
      `listing branches of ${req.repo}`,
    );
    if (heads.code !== 0)
      throw new GitCommandError(`git ls-remote failed: ${lastLines(heads.stderr)}`, heads);
    const remoteRefs = new Map<string, string>();
    for (const line of heads.stdout.toString("utf8").split("\n")) {
      const [sha, ref] = line.trim().split(/\s+/);
      if (sha && ref) remoteRefs.set(ref, sha);
    }
    const baseTip = remoteRefs.get(`refs/heads/${req.baseBranch}`);
    const oldHead = remoteRefs.get(`refs/heads/${head}`);
    if (!baseTip) {
      throw new PublishRefusedError(
        "base_missing",
        `The base branch ${req.baseBranch} does not exist in ${req.repo}. Nothing was pushed.`,
      );
    }
    const refspecs = [`+refs/heads/${req.baseBranch}:${tracking(req.baseBranch)}`];
    if (oldHead) refspecs.push(`+refs/heads/${head}:${tracking(head)}`);
    const fetched = await gitNetwork(
      ["fetch", "--no-tags", "--quiet", "--no-write-fetch-head", req.remote.url, ...refspecs],
      cwd,
      req.remote,
      `fetching ${req.repo}`,
    );
    if (fetched.code !== 0)
      throw new GitCommandError(`git fetch failed: ${lastLines(fetched.stderr)}`, fetched);
    return { baseTip, ...(oldHead ? { oldHead } : {}) };
  }

  /** Files the branch changes relative to where it left the base branch. */
  async function branchFiles(cwd: string, baseTip: string, headSha: string): Promise<string[]> {
    const mergeBase = await git(["merge-base", baseTip, headSha], { cwd, allowFail: true });
    if (mergeBase.code !== 0) return [];
    const diff = await git(
      ["diff", "--name-only", "--no-renames", "-z", mergeBase.stdout.toString().trim(), headSha],
      { cwd },
    );
    return diff.stdout
      .toString("utf8")
      .split("\0")
      .filter((p) => p.length > 0)
      .sort();
  }

  async function pushLocked(req: PushBundleRequest): Promise<PushOutcome> {
    const head = req.headBranch;
    if (!head.startsWith("baton/") || !(await validBranchName(head))) {
      throw new PublishRefusedError(
        "not_baton_branch",
        `Baton only publishes baton/* branches, and ${head} is not one. Nothing was pushed.`,
      );
    }
    if (req.bundle.length > maxBundleBytes) {
      throw new PublishRefusedError(
        "bundle_too_large",
        `The changes are too large to publish (${formatMiB(req.bundle.length)}, limit ${formatMiB(maxBundleBytes)}). Nothing was pushed.`,
      );
    }
    const header = parseBundleHeader(req.bundle);
    const foreign = header.refs.filter((r) => r.name !== "HEAD" && !r.name.startsWith("refs/heads/baton/"));
    if (foreign.length > 0) {
      throw new PublishRefusedError(
        "not_baton_branch",
        `The changes carry ${foreign.map((r) => r.name).join(", ")}; Baton only publishes baton/* branches. Nothing was pushed.`,
      );
    }
    const wanted = header.refs.find((r) => r.name === `refs/heads/${head}`);
    const distinct = [...new Set(header.refs.map((r) => r.sha))];
    const sourceRef = wanted ?? (distinct.length === 1 ? header.refs[0] : undefined);
    if (!sourceRef) {
      throw new PublishRefusedError(
        "invalid_bundle",
        `The agent's bundle does not hold the branch ${head}. Nothing was pushed.`,
      );
    }
    const newSha = sourceRef.sha;
    if (req.expectedHeadSha && req.expectedHeadSha !== newSha) {
      throw new PublishRefusedError(
        "invalid_bundle",
        `The agent's bundle ends at ${newSha.slice(0, 12)}, not at the commit its run reported (${req.expectedHeadSha.slice(0, 12)}). Nothing was pushed.`,
      );
    }

    const cwd = await ensureWorkRepo(req.repo);
    const { baseTip, oldHead } = await fetchBranches(cwd, req);
    if (oldHead === newSha) {
      const files = await branchFiles(cwd, baseTip, newSha);
      await forgetHead(cwd, head);
      return { status: "up_to_date", headSha: newSha, branchFiles: files };
    }

    const token = `${req.runId.replace(/[^A-Za-z0-9_-]/g, "_")}-${randomBytes(4).toString("hex")}`;
    const bundlePath = join(cwd, "baton-tmp", `${token}.bundle`);
    const incoming = `refs/baton/incoming/${token}`;
    await writeFile(bundlePath, req.bundle, { mode: 0o600 });
    try {
      const verify = await git(["bundle", "verify", "--quiet", bundlePath], { cwd, allowFail: true });
      if (verify.code !== 0) {
        if (/lacks these prerequisite/i.test(verify.stderr)) {
          throw new PublishRefusedError(
            "not_fast_forward",
            `The changes are not based on ${oldHead ? head : req.baseBranch} as it is on GitHub. Nothing was pushed.`,
          );
        }
        throw new PublishRefusedError(
          "invalid_bundle",
          `The agent's bundle is not a valid git bundle. Nothing was pushed.`,
        );
      }
      const fetchBundle = await git(
        [
          "fetch",
          "--no-tags",
          "--quiet",
          "--no-write-fetch-head",
          bundlePath,
          `${sourceRef.name}:${incoming}`,
        ],
        {
          cwd,
          allowFail: true,
        },
      );
      if (fetchBundle.code !== 0) {
        throw new PublishRefusedError(
          "invalid_bundle",
          `The agent's bundle could not be read (${lastLines(fetchBundle.stderr)}). Nothing was pushed.`,
        );
      }
      const type = (await git(["cat-file", "-t", newSha], { cwd, allowFail: true })).stdout.toString().trim();
      if (type !== "commit")
        throw new PublishRefusedError(
          "invalid_bundle",
          "The agent's bundle does not end at a commit. Nothing was pushed.",
        );

      let from: string;
      if (oldHead) {
        // A follow-up: the new commits must sit on top of what the branch holds now.
        if (!(await isAncestor(cwd, oldHead, newSha))) {
          throw new PublishRefusedError(
            "not_fast_forward",
            `The changes are not a fast-forward of ${head} (it holds commits the agent did not build on). Nothing was pushed.`,
          );
        }
        from = oldHead;
      } else {
        // A new branch: the bundle must build on the base branch's history.
        for (const prerequisite of header.prerequisites) {
          if (!(await isAncestor(cwd, prerequisite, baseTip))) {
            throw new PublishRefusedError(
              "not_fast_forward",
              `The changes are not based on ${req.baseBranch}. Nothing was pushed.`,
            );
          }
        }
        const mergeBase = await git(["merge-base", baseTip, newSha], { cwd, allowFail: true });
        if (mergeBase.code !== 0) {
          throw new PublishRefusedError(
            "not_fast_forward",
            `The changes do not share history with ${req.baseBranch}. Nothing was pushed.`,
          );
        }
        if (await isAncestor(cwd, newSha, baseTip)) {
          throw new PublishRefusedError(
            "no_commits",
            `The changes add no commits to ${req.baseBranch}. Nothing was pushed.`,
          );
        }
        from = baseTip;
      }

      const files = await touchedFiles(cwd, from, newSha);
      const refusal = protectedRefusal(files, req.protectedPaths);
      if (refusal) throw new PublishRefusedError("protected_path", refusal);

      // Never forced: if someone moved the branch meanwhile, GitHub rejects the push and nothing changes.
      const push = await gitNetwork(
        ["push", "--porcelain", "--no-verify", req.remote.url, `${newSha}:refs/heads/${head}`],
        cwd,
        req.remote,
        `pushing ${head} to ${req.repo}`,
      );
      if (push.code !== 0) {
        const text = `${push.stdout.toString("utf8")}\n${push.stderr}`;
        if (/non-fast-forward|fetch first|rejected/i.test(text)) {
          throw new PublishRefusedError(
            "not_fast_forward",
            `${head} changed on GitHub while Baton was publishing, and the changes are no longer a fast-forward of it. Nothing was pushed.`,
          );
        }
        throw new GitCommandError(`git push failed: ${lastLines(text)}`, push);
      }
      options.logger.info(
        { repo: req.repo, head, headSha: newSha, previousSha: oldHead, files: files.length },
        "pushed branch",
      );
      return {
        status: "pushed",
        headSha: newSha,
        ...(oldHead ? { previousSha: oldHead } : {}),
        branchFiles: await branchFiles(cwd, baseTip, newSha),
      };
    } finally {
      await rm(bundlePath, { force: true });
      await git(["update-ref", "-d", incoming], { cwd, allowFail: true });
      await forgetHead(cwd, head);
    }
  }

  async function validBranchName(branch: string): Promise<boolean> {
    if (!/^[A-Za-z0-9._/-]+$/.test(branch)) return false;
    const r = await git(["check-ref-format", `refs/heads/${branch}`], { allowFail: true });
    return r.code === 0;
  }

  /** One operation per repository at a time in this process: they share one work repository. */
  async function locked<T>(repo: string, work: () => Promise<T>): Promise<T> {
    const key = repo.toLowerCase();
    const previous = locks.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(work);
    locks.set(key, run);
    try {
      return await run;
    } finally {
      if (locks.get(key) === run) locks.delete(key);
    }
  }

  return {
    pushBundle: (request) => locked(request.repo, () => pushLocked(request)),
    branchState: (request) =>
      locked(request.repo, async () => {
        if (!request.headBranch.startsWith("baton/") || !(await validBranchName(request.headBranch))) {
          return { branchFiles: [] };
        }
        const cwd = await ensureWorkRepo(request.repo);
        const { baseTip, oldHead } = await fetchBranches(cwd, request);
        if (!oldHead) return { branchFiles: [] };
        const files = await branchFiles(cwd, baseTip, oldHead);
        await forgetHead(cwd, request.headBranch);
        return { headSha: oldHead, branchFiles: files };
      }),
  };
}

/** A git command failed for a reason that is neither a refusal nor a classified GitHub problem. */
export class GitCommandError extends Error {
  constructor(
    message: string,
    readonly result: { code: number; stderr: string },
  ) {
    super(message);
    this.name = "GitCommandError";
  }
}

export interface BundleHeader {
  version: 2 | 3;
  prerequisites: string[];
  refs: { sha: string; name: string }[];
}

const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** Reads a git bundle's header (v2/v3): prerequisite commits and the refs it carries. */
export function parseBundleHeader(bundle: Buffer): BundleHeader {
  const limit = Math.min(bundle.length, 1024 * 1024);
  const end = bundle.subarray(0, limit).indexOf("\n\n");
  const invalid = () =>
    new PublishRefusedError(
      "invalid_bundle",
      "The agent's bundle is not a valid git bundle. Nothing was pushed.",
    );
  if (end < 0) throw invalid();
  const lines = bundle.subarray(0, end).toString("utf8").split("\n");
  const signature = lines.shift();
  const version = signature === "# v2 git bundle" ? 2 : signature === "# v3 git bundle" ? 3 : undefined;
  if (!version) throw invalid();
  const prerequisites: string[] = [];
  const refs: { sha: string; name: string }[] = [];
  for (const line of lines) {
    if (version === 3 && line.startsWith("@")) {
      if (line.startsWith("@filter")) throw invalid(); // partial bundles cannot be pushed
      continue;
    }
    if (line.startsWith("-")) {
      const sha = line.slice(1).split(" ")[0] ?? "";
      if (!SHA.test(sha)) throw invalid();
      prerequisites.push(sha);
      continue;
    }
    const space = line.indexOf(" ");
    const sha = line.slice(0, space);
    const name = line.slice(space + 1);
    if (space < 0 || !SHA.test(sha) || !name) throw invalid();
    refs.push({ sha, name });
  }
  if (refs.length === 0) throw invalid();
  return { version, prerequisites, refs };
}

/** The sentence for a change that touches protected paths, or undefined when it touches none. */
export function protectedRefusal(files: string[], patterns: string[]): string | undefined {
  if (patterns.length === 0) return undefined;
  const matchers = patterns.map((p) => ({ pattern: p, match: picomatch(p, { dot: true }) }));
  const hits: string[] = [];
  const matched = new Set<string>();
  for (const file of files) {
    const byPattern = matchers.filter((m) => m.match(file));
    if (byPattern.length === 0) continue;
    hits.push(file);
    for (const m of byPattern) matched.add(m.pattern);
  }
  if (hits.length === 0) return undefined;
  const shown = hits.slice(0, 3);
  const list =
    hits.length <= 3
      ? shown.length === 1
        ? shown[0]!
        : `${shown.slice(0, -1).join(", ")} and ${shown[shown.length - 1]!}`
      : `${shown.join(", ")} and ${hits.length - 3} more`;
  return `This change touches ${list}, which the policy protects (protectedPaths: ${[...matched].join(", ")}). Nothing was pushed.`;
}

function redact(text: string, remote: GitRemote | undefined): string {
  if (!remote) return text;
  const value = remote.authorization.replace(/^\w+\s+/, "");
  return value ? text.split(value).join("[redacted]") : text;
}

function lastLines(text: string, n = 3): string {
  return text.trim().split("\n").slice(-n).join(" / ").slice(0, 500);
}

function formatMiB(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
