// GitHub emulator for tests: a real HTTP server speaking the REST routes Baton's octokit calls use and
// git smart HTTP (clone/fetch/push) backed by real bare repositories through `git http-backend` (CGI).
// It checks credentials like GitHub (tokens, installation tokens limited to repositories, RS256 app
// JWTs), refuses a pull request for a branch that was never pushed and a second open one for the same
// head, and can inject faults (e.g. 502 twice on one route).
import { spawn } from "node:child_process";
import { createPublicKey, randomBytes, verify as verifySignature, type KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { z } from "zod";

export interface GitHubEmulatorOptions {
  /** A personal/classic token with access to every repository. */
  token?: string;
  app?: { appId: string; privateKeyPem: string; installationId: number };
  /** Lifetime of minted installation tokens (GitHub: 3600 s). */
  installationTokenTtlSeconds?: number;
  /** The emulator's clock (JWT checks, token expiry); tests that move time share it with Baton. */
  now?: () => Date;
}

export interface EmulatedPull {
  number: number;
  title: string;
  body: string;
  head: string;
  base: string;
  draft: boolean;
  state: "open" | "closed";
  comments: string[];
}

export type AuthKind = "none" | "token" | "installation" | "jwt" | "invalid";

export interface EmulatorCall {
  method: string;
  /** Route template, e.g. `POST /repos/{owner}/{repo}/pulls`, or the raw path when no route matched. */
  route: string;
  path: string;
  status: number;
  auth: AuthKind;
  /** Parsed JSON body of REST writes. */
  body?: unknown;
}

export interface MintedToken {
  token: string;
  installationId: number;
  repositories: string[] | undefined;
  permissions: Record<string, string> | undefined;
  expiresAt: string;
}

export interface GitHubEmulator {
  /** REST base, GitHub Enterprise Server style: `http://127.0.0.1:<port>/api/v3`. */
  apiUrl: string;
  /** Git host: `http://127.0.0.1:<port>` (clone URLs are `<gitUrl>/<owner>/<name>.git`). */
  gitUrl: string;
  createRepo(
    fullName: string,
    init?: { files?: Record<string, string>; defaultBranch?: string },
  ): Promise<void>;
  bareRepoPath(fullName: string): string;
  pulls(fullName: string): EmulatedPull[];
  /** Sha of a branch in the bare repository, undefined when it does not exist. */
  branchSha(fullName: string, branch: string): Promise<string | undefined>;
  /** Commits files on top of `branch` (or of `from` when the branch does not exist) as someone else would. */
  pushCommit(fullName: string, branch: string, files: Record<string, string>, from?: string): Promise<string>;
  calls(): EmulatorCall[];
  mintedTokens(): MintedToken[];
  /**
   * The next `times` requests matching `route` (a template from `calls()`) answer `status`; status 200
   * answers an empty list (a stale read, as GitHub's lists can lag behind a write).
   */
  injectFault(fault: { route: string; status: number; times: number }): void;
  close(): Promise<void>;
}

interface RepoState {
  fullName: string;
  owner: string;
  name: string;
  defaultBranch: string;
  pulls: EmulatedPull[];
  nextNumber: number;
}

interface Principal {
  kind: AuthKind;
  repositories?: Set<string>;
  permissions?: Record<string, string>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly payload: Record<string, unknown>,
  ) {
    super(String(payload.message ?? status));
  }
}

const validationFailed = (errors: Record<string, unknown>[]) =>
  new HttpError(422, {
    message: "Validation Failed",
    errors,
    documentation_url: "https://docs.github.com/rest",
  });

const CreatePullBody = z.object({
  title: z.string().min(1),
  head: z.string().min(1),
  base: z.string().min(1),
  body: z.string().optional(),
  draft: z.boolean().optional(),
  maintainer_can_modify: z.boolean().optional(),
});
const UpdatePullBody = z.object({
  title: z.string().optional(),
  body: z.string().optional(),
  state: z.enum(["open", "closed"]).optional(),
  base: z.string().optional(),
});
const CommentBody = z.object({ body: z.string().min(1) });
const AccessTokenBody = z.object({
  repositories: z.array(z.string()).optional(),
  repository_ids: z.array(z.number()).optional(),
  permissions: z.record(z.string(), z.enum(["read", "write"])).optional(),
});

type Handler = (ctx: {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  principal: Principal;
}) => Promise<{ status: number; json: unknown }>;

interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  keys: string[];
  auth: "jwt" | "token" | "repo";
  handler: Handler;
}

const GIT_ENV_BASE = {
  PATH: "/usr/local/bin:/usr/bin:/bin",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_TERMINAL_PROMPT: "0",
  LC_ALL: "C",
};

export async function startGitHubEmulator(options: GitHubEmulatorOptions = {}): Promise<GitHubEmulator> {
  const root = await mkdtemp(join(tmpdir(), "baton-gh-emu-"));
  const gitEnv = { ...GIT_ENV_BASE, HOME: root };
  const repos = new Map<string, RepoState>();
  const calls: EmulatorCall[] = [];
  const minted: MintedToken[] = [];
  const installationTokens = new Map<
    string,
    { repositories?: Set<string>; permissions?: Record<string, string>; expiresAt: number }
  >();
  const faults: { route: string; status: number; remaining: number }[] = [];
  const appKey: KeyObject | undefined = options.app ? createPublicKey(options.app.privateKeyPem) : undefined;
  const ttl = options.installationTokenTtlSeconds ?? 3600;
  const nowMs = () => (options.now ? options.now().getTime() : Date.now());
  let gitUrl = "";

  const repoPath = (fullName: string) => join(root, `${fullName}.git`);
  const repoOf = (owner: string, name: string): RepoState => {
    const repo = repos.get(`${owner}/${name}`.toLowerCase());
    if (!repo) throw new HttpError(404, { message: "Not Found" });
    return repo;
  };

  async function runGit(
    args: string[],
    cwd?: string,
    env: Record<string, string> = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return await new Promise((resolve, reject) => {
      const child = spawn("git", args, {
        cwd,
        env: { ...gitEnv, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  }

  async function branchSha(fullName: string, branch: string): Promise<string | undefined> {
    const repo = repos.get(fullName.toLowerCase());
    if (!repo) return undefined;
    const r = await runGit(
      ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}^{commit}`],
      repoPath(repo.fullName),
    );
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  async function commitFiles(
    fullName: string,
    branch: string,
    files: Record<string, string>,
    from?: string,
  ): Promise<string> {
    const work = await mkdtemp(join(root, "work-"));
    const identity = {
      GIT_AUTHOR_NAME: "Octo Cat",
      GIT_AUTHOR_EMAIL: "octocat@example.com",
      GIT_COMMITTER_NAME: "Octo Cat",
      GIT_COMMITTER_EMAIL: "octocat@example.com",
    };
    try {
      const must = async (args: string[]) => {
        const r = await runGit(args, work, identity);
        if (r.code !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
        return r.stdout;
      };
      await must(["init", "--quiet", "-b", branch]);
      const startBranch = (await branchSha(fullName, branch))
        ? branch
        : from && (await branchSha(fullName, from))
          ? from
          : undefined;
      if (startBranch) {
        await must(["fetch", "--quiet", repoPath(fullName), `refs/heads/${startBranch}`]);
        await must(["reset", "--quiet", "--hard", "FETCH_HEAD"]);
      }
      for (const [path, content] of Object.entries(files)) {
        await mkdir(dirname(join(work, path)), { recursive: true });
        await writeFile(join(work, path), content);
      }
      await must(["add", "-A"]);
      await must([
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        `Update ${Object.keys(files).join(", ") || "nothing"}`,
      ]);
      await must(["push", "--quiet", repoPath(fullName), `HEAD:refs/heads/${branch}`]);
      return (await must(["rev-parse", "HEAD"])).trim();
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  // ---- authentication ---------------------------------------------------------------------------

  function verifyJwt(jwt: string): boolean {
    if (!appKey || !options.app) return false;
    const parts = jwt.split(".");
    if (parts.length !== 3) return false;
    const [h, p, s] = parts as [string, string, string];
    try {
      const header = JSON.parse(Buffer.from(h, "base64url").toString()) as { alg?: string };
      const payload = JSON.parse(Buffer.from(p, "base64url").toString()) as {
        iat?: number;
        exp?: number;
        iss?: unknown;
      };
      if (header.alg !== "RS256") return false;
      if (!verifySignature("RSA-SHA256", Buffer.from(`${h}.${p}`), appKey, Buffer.from(s, "base64url")))
        return false;
      const now = Math.floor(nowMs() / 1000);
      if (String(payload.iss) !== options.app.appId) return false;
      if (typeof payload.iat !== "number" || typeof payload.exp !== "number") return false;
      if (payload.iat > now + 60 || payload.exp <= now || payload.exp - payload.iat > 600) return false;
      return true;
    } catch {
      return false;
    }
  }

  function principalFor(secret: string | undefined): Principal {
    if (!secret) return { kind: "none" };
    if (options.token && secret === options.token) return { kind: "token" };
    const installation = installationTokens.get(secret);
    if (installation) {
      if (installation.expiresAt <= nowMs()) return { kind: "invalid" };
      return {
        kind: "installation",
        ...(installation.repositories ? { repositories: installation.repositories } : {}),
        ...(installation.permissions ? { permissions: installation.permissions } : {}),
      };
    }
    if (secret.split(".").length === 3 && verifyJwt(secret)) return { kind: "jwt" };
    return { kind: "invalid" };
  }

  function restPrincipal(req: IncomingMessage): Principal {
    const header = req.headers.authorization ?? "";
    const match = /^(?:token|bearer)\s+(.+)$/i.exec(header);
    return principalFor(match?.[1]?.trim());
  }

  function canAccess(
    principal: Principal,
    repo: RepoState,
    write: "contents" | "pull_requests" | undefined,
  ): boolean {
    if (principal.kind === "token") return true;
    if (principal.kind !== "installation") return false;
    if (principal.repositories && !principal.repositories.has(repo.name.toLowerCase())) return false;
    if (write && principal.permissions && principal.permissions[write] !== "write") return false;
    return true;
  }

  // ---- REST routes -------------------------------------------------------------------------------

  const routes: Route[] = [];
  const route = (method: string, template: string, auth: Route["auth"], handler: Handler) => {
    const keys: string[] = [];
    const source = template.replace(/\{(\w+)\}/g, (_m, key: string) => {
      keys.push(key);
      return "([^/]+)";
    });
    routes.push({
      method,
      template: `${method} ${template}`,
      pattern: new RegExp(`^${source}$`),
      keys,
      auth,
      handler,
    });
  };

  const pullJson = (repo: RepoState, pull: EmulatedPull, headSha: string | undefined) => ({
    number: pull.number,
    id: pull.number * 1000,
    html_url: `${gitUrl}/${repo.fullName}/pull/${pull.number}`,
    url: `${gitUrl}/api/v3/repos/${repo.fullName}/pulls/${pull.number}`,
    state: pull.state,
    draft: pull.draft,
    merged: false,
    merged_at: null,
    title: pull.title,
    body: pull.body,
    user: { login: "baton[bot]" },
    head: {
      ref: pull.head,
      sha: headSha ?? "0".repeat(40),
      label: `${repo.owner}:${pull.head}`,
      repo: { full_name: repo.fullName },
    },
    base: { ref: pull.base, repo: { full_name: repo.fullName } },
  });
  const pullOf = (repo: RepoState, n: string) => {
    const pull = repo.pulls.find((p) => p.number === Number(n));
    if (!pull) throw new HttpError(404, { message: "Not Found" });
    return pull;
  };
  const requireRepo = (
    principal: Principal,
    params: Record<string, string>,
    write?: "contents" | "pull_requests",
  ) => {
    const repo = repoOf(params.owner!, params.repo!);
    if (!canAccess(principal, repo, undefined)) throw new HttpError(404, { message: "Not Found" });
    if (write && !canAccess(principal, repo, write)) {
      throw new HttpError(403, { message: "Resource not accessible by integration" });
    }
    return repo;
  };

  route("GET", "/user", "token", async ({ principal }) => {
    if (principal.kind !== "token")
      throw new HttpError(403, { message: "Resource not accessible by integration" });
    return { status: 200, json: { login: "baton-bot", id: 1, type: "User" } };
  });
  route("GET", "/app", "jwt", async () => ({
    status: 200,
    json: { id: Number(options.app?.appId), slug: "baton-test", name: "Baton Test" },
  }));
  route("GET", "/repos/{owner}/{repo}/installation", "jwt", async ({ params }) => {
    repoOf(params.owner!, params.repo!);
    return { status: 200, json: { id: options.app!.installationId, app_id: Number(options.app!.appId) } };
  });
  route("POST", "/app/installations/{id}/access_tokens", "jwt", async ({ params, body }) => {
    if (Number(params.id) !== options.app!.installationId) throw new HttpError(404, { message: "Not Found" });
    const input = AccessTokenBody.parse(body ?? {});
    for (const name of input.repositories ?? []) {
      if (![...repos.values()].some((r) => r.name.toLowerCase() === name.toLowerCase())) {
        throw validationFailed([
          { resource: "Repository", code: "invalid", field: "repositories", message: `${name} not found` },
        ]);
      }
    }
    const token = `ghs_${randomBytes(18).toString("hex")}`;
    const expiresAt = new Date(nowMs() + ttl * 1000).toISOString();
    installationTokens.set(token, {
      ...(input.repositories
        ? { repositories: new Set(input.repositories.map((n) => n.toLowerCase())) }
        : {}),
      ...(input.permissions ? { permissions: input.permissions } : {}),
      expiresAt: Date.parse(expiresAt),
    });
    minted.push({
      token,
      installationId: options.app!.installationId,
      repositories: input.repositories,
      permissions: input.permissions,
      expiresAt,
    });
    return {
      status: 201,
      json: {
        token,
        expires_at: expiresAt,
        permissions: input.permissions ?? { contents: "write", pull_requests: "write", metadata: "read" },
        repository_selection: input.repositories ? "selected" : "all",
      },
    };
  });
  route("GET", "/repos/{owner}/{repo}", "repo", async ({ params, principal }) => {
    const repo = requireRepo(principal, params);
    return {
      status: 200,
      json: { full_name: repo.fullName, name: repo.name, default_branch: repo.defaultBranch, private: true },
    };
  });
  route("GET", "/repos/{owner}/{repo}/pulls", "repo", async ({ params, query, principal }) => {
    const repo = requireRepo(principal, params);
    const state = query.get("state") ?? "open";
    const head = query.get("head");
    const base = query.get("base");
    const perPage = Math.min(100, Number(query.get("per_page") ?? 30));
    const list = repo.pulls.filter(
      (p) =>
        (state === "all" || p.state === state) &&
        (!head ||
          `${repo.owner}:${p.head}`.toLowerCase() === head.toLowerCase() ||
          (!head.includes(":") && p.head === head)) &&
        (!base || p.base === base),
    );
    const json = await Promise.all(
      list.slice(0, perPage).map(async (p) => pullJson(repo, p, await branchSha(repo.fullName, p.head))),
    );
    return { status: 200, json };
  });
  route("POST", "/repos/{owner}/{repo}/pulls", "repo", async ({ params, body, principal }) => {
    const repo = requireRepo(principal, params, "pull_requests");
    const input = CreatePullBody.safeParse(body);
    if (!input.success)
      throw validationFailed([{ resource: "PullRequest", code: "missing_field", field: "title" }]);
    let head = input.data.head;
    if (head.includes(":")) {
      const [owner, branch] = head.split(":", 2) as [string, string];
      if (owner.toLowerCase() !== repo.owner.toLowerCase()) {
        throw validationFailed([{ resource: "PullRequest", code: "invalid", field: "head" }]);
      }
      head = branch;
    }
    const headSha = await branchSha(repo.fullName, head);
    if (!headSha) throw validationFailed([{ resource: "PullRequest", code: "invalid", field: "head" }]);
    const baseSha = await branchSha(repo.fullName, input.data.base);
    if (!baseSha) throw validationFailed([{ resource: "PullRequest", code: "invalid", field: "base" }]);
    if (repo.pulls.some((p) => p.state === "open" && p.head === head && p.base === input.data.base)) {
      throw validationFailed([
        {
          resource: "PullRequest",
          code: "custom",
          message: `A pull request already exists for ${repo.owner}:${head}.`,
        },
      ]);
    }
    if (headSha === baseSha) {
      throw validationFailed([
        {
          resource: "PullRequest",
          code: "custom",
          message: `No commits between ${input.data.base} and ${head}`,
        },
      ]);
    }
    const pull: EmulatedPull = {
      number: repo.nextNumber++,
      title: input.data.title,
      body: input.data.body ?? "",
      head,
      base: input.data.base,
      draft: input.data.draft ?? false,
      state: "open",
      comments: [],
    };
    repo.pulls.push(pull);
    return { status: 201, json: pullJson(repo, pull, headSha) };
  });
  route("GET", "/repos/{owner}/{repo}/pulls/{number}", "repo", async ({ params, principal }) => {
    const repo = requireRepo(principal, params);
    const pull = pullOf(repo, params.number!);
    return { status: 200, json: pullJson(repo, pull, await branchSha(repo.fullName, pull.head)) };
  });
  route("PATCH", "/repos/{owner}/{repo}/pulls/{number}", "repo", async ({ params, body, principal }) => {
    const repo = requireRepo(principal, params, "pull_requests");
    const pull = pullOf(repo, params.number!);
    const input = UpdatePullBody.parse(body ?? {});
    if (input.title !== undefined) pull.title = input.title;
    if (input.body !== undefined) pull.body = input.body;
    if (input.base !== undefined) pull.base = input.base;
    if (input.state !== undefined) pull.state = input.state;
    return { status: 200, json: pullJson(repo, pull, await branchSha(repo.fullName, pull.head)) };
  });
  route("GET", "/repos/{owner}/{repo}/issues/{number}/comments", "repo", async ({ params, principal }) => {
    const repo = requireRepo(principal, params);
    const pull = pullOf(repo, params.number!);
    return { status: 200, json: pull.comments.map((body, i) => ({ id: pull.number * 1000 + i, body })) };
  });
  route(
    "POST",
    "/repos/{owner}/{repo}/issues/{number}/comments",
    "repo",
    async ({ params, body, principal }) => {
      const repo = requireRepo(principal, params, "pull_requests");
      const pull = pullOf(repo, params.number!);
      const input = CommentBody.parse(body);
      pull.comments.push(input.body);
      return { status: 201, json: { id: pull.number * 1000 + pull.comments.length, body: input.body } };
    },
  );

  async function handleRest(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams,
  ): Promise<void> {
    const principal = restPrincipal(req);
    const method = req.method ?? "GET";
    const found = routes
      .map((r) => ({ r, m: r.method === method ? r.pattern.exec(path) : null }))
      .find((x) => x.m !== null);
    const raw = await readBody(req, 10 * 1024 * 1024);
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        return send(res, { method, route: `${method} ${path}`, path, auth: principal.kind }, 400, {
          message: "Problems parsing JSON",
        });
      }
    }
    const call = {
      method,
      route: found ? found.r.template : `${method} ${path}`,
      path,
      auth: principal.kind,
      ...(body !== undefined ? { body } : {}),
    };
    if (!found) return send(res, call, 404, { message: "Not Found" });
    const fault = faults.find((f) => f.route === found.r.template && f.remaining > 0);
    if (fault) {
      fault.remaining -= 1;
      // A 200 "fault" is a stale read: GitHub's lists can lag behind a write that just happened.
      if (fault.status === 200) return send(res, call, 200, []);
      return send(res, call, fault.status, {
        message: fault.status >= 500 ? "Server Error" : "Injected fault",
      });
    }
    const { r, m } = found;
    if (principal.kind === "none" || principal.kind === "invalid") {
      return send(res, call, 401, {
        message: r.auth === "jwt" ? "A JSON web token could not be decoded" : "Bad credentials",
      });
    }
    if (r.auth === "jwt" && principal.kind !== "jwt") {
      return send(res, call, 401, { message: "A JSON web token could not be decoded" });
    }
    if (r.auth !== "jwt" && principal.kind === "jwt") {
      return send(res, call, 403, { message: "Resource not accessible by integration" });
    }
    const params: Record<string, string> = {};
    r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m![i + 1]!)));
    try {
      const out = await r.handler({ params, query, body, principal });
      return send(res, call, out.status, out.json);
    } catch (error) {
      if (error instanceof HttpError) return send(res, call, error.status, error.payload);
      if (error instanceof z.ZodError)
        return send(res, call, 422, { message: "Validation Failed", errors: error.issues });
      return send(res, call, 500, { message: String(error) });
    }
  }

  function send(
    res: ServerResponse,
    call: Omit<EmulatorCall, "status">,
    status: number,
    json: unknown,
  ): void {
    calls.push({ ...call, status });
    const text = JSON.stringify(json);
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  // ---- git smart HTTP ----------------------------------------------------------------------------

  async function handleGit(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams,
  ): Promise<void> {
    const method = req.method ?? "GET";
    const match = /^\/([^/]+)\/([^/]+)\.git(\/.*)$/.exec(path)!;
    const [, owner, name, rest] = match as unknown as [string, string, string, string];
    const service = rest === "/info/refs" ? (query.get("service") ?? "") : rest.slice(1);
    const template = `${method} /{owner}/{repo}.git/${service}`;
    const basic = /^basic\s+(.+)$/i.exec(req.headers.authorization ?? "");
    const password = basic
      ? Buffer.from(basic[1]!, "base64").toString("utf8").split(":").slice(1).join(":")
      : undefined;
    const principal = principalFor(password);
    const call = { method, route: template, path, auth: principal.kind };
    const fail = (status: number, message: string, headers: Record<string, string> = {}) => {
      calls.push({ ...call, status });
      res.writeHead(status, { "content-type": "text/plain", ...headers });
      res.end(message);
    };
    const fault = faults.find((f) => f.route === template && f.remaining > 0);
    if (fault) {
      fault.remaining -= 1;
      await readBody(req, Number.MAX_SAFE_INTEGER).catch(() => undefined);
      return fail(fault.status, "injected fault");
    }
    const repo = repos.get(`${owner}/${name}`.toLowerCase());
    if (principal.kind !== "token" && principal.kind !== "installation") {
      return fail(401, "Authentication required", { "www-authenticate": 'Basic realm="GitHub"' });
    }
    if (!repo || !canAccess(principal, repo, undefined)) return fail(404, "Repository not found.");
    if (!["git-upload-pack", "git-receive-pack"].includes(service)) return fail(403, "Service not allowed");
    if (service === "git-receive-pack" && !canAccess(principal, repo, "contents")) {
      return fail(403, "Permission to push denied");
    }
    const env: Record<string, string> = {
      ...gitEnv,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: `/${repo.fullName}.git${rest}`,
      REQUEST_METHOD: method,
      QUERY_STRING: query.toString(),
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: "x-access-token",
      REMOTE_ADDR: "127.0.0.1",
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "http.receivepack",
      GIT_CONFIG_VALUE_0: "true",
    };
    if (req.headers["content-length"]) env.CONTENT_LENGTH = String(req.headers["content-length"]);
    if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = String(req.headers["content-encoding"]);
    if (req.headers["git-protocol"]) env.GIT_PROTOCOL = String(req.headers["git-protocol"]);
    const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    child.on("error", () => undefined);
    child.stdin.on("error", () => undefined);
    req.pipe(child.stdin);
    let headerBuf = Buffer.alloc(0);
    let headersDone = false;
    let status = 200;
    child.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      headerBuf = Buffer.concat([headerBuf, chunk]);
      let end = headerBuf.indexOf("\r\n\r\n");
      let sep = 4;
      if (end < 0) {
        end = headerBuf.indexOf("\n\n");
        sep = 2;
      }
      if (end < 0) return;
      headersDone = true;
      const headers: Record<string, string> = {};
      for (const line of headerBuf.subarray(0, end).toString("utf8").split(/\r?\n/)) {
        const i = line.indexOf(":");
        if (i < 0) continue;
        const key = line.slice(0, i).trim().toLowerCase();
        const value = line.slice(i + 1).trim();
        if (key === "status") status = Number(value.split(" ")[0]);
        else headers[key] = value;
      }
      res.writeHead(status, headers);
      res.write(headerBuf.subarray(end + sep));
    });
    child.on("close", () => {
      calls.push({ ...call, status });
      if (!headersDone) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("http-backend produced no answer");
        return;
      }
      res.end();
    });
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const path = url.pathname;
    const work = path.startsWith("/api/v3/")
      ? handleRest(req, res, path.slice("/api/v3".length), url.searchParams)
      : /^\/[^/]+\/[^/]+\.git\//.test(path)
        ? handleGit(req, res, path, url.searchParams)
        : Promise.resolve(
            send(
              res,
              { method: req.method ?? "GET", route: `${req.method} ${path}`, path, auth: "none" },
              404,
              { message: "Not Found" },
            ),
          );
    work.catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  gitUrl = `http://127.0.0.1:${port}`;

  return {
    apiUrl: `${gitUrl}/api/v3`,
    gitUrl,
    async createRepo(fullName, init = {}) {
      const [owner, name] = fullName.split("/") as [string, string];
      if (!owner || !name) throw new Error(`bad repository name ${fullName}`);
      const defaultBranch = init.defaultBranch ?? "main";
      const path = repoPath(fullName);
      if (existsSync(path)) throw new Error(`${fullName} exists`);
      await mkdir(path, { recursive: true });
      const r = await runGit(["init", "--bare", "--quiet", `--initial-branch=${defaultBranch}`, path]);
      if (r.code !== 0) throw new Error(r.stderr);
      repos.set(fullName.toLowerCase(), { fullName, owner, name, defaultBranch, pulls: [], nextNumber: 1 });
      await commitFiles(fullName, defaultBranch, init.files ?? { "README.md": `# ${name}\n` });
    },
    bareRepoPath: (fullName) => repoPath(repos.get(fullName.toLowerCase())?.fullName ?? fullName),
    pulls: (fullName) =>
      (repos.get(fullName.toLowerCase())?.pulls ?? []).map((p) => ({ ...p, comments: [...p.comments] })),
    branchSha,
    pushCommit: commitFiles,
    calls: () => [...calls],
    mintedTokens: () => [...minted],
    injectFault: ({ route: r, status, times }) => {
      faults.push({ route: r, status, remaining: times });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, { message: "Payload too large" });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
