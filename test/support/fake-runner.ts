// A minimal runner API for the agent's own tests (the real one lives in src/adapters/runner-api/):
// serves one run spec, records events (idempotent by seq), the bundle and the result, relays thread
// messages and cancellation in the events answer, serves a bare repository through `git
// http-backend` (upload-pack only, run token as the Basic password) and proxies /llm/v1 to a model.
import { spawn } from "node:child_process";
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import path from "node:path";
import { PostEventsBody, type AgentEvent } from "../../src/shared/agent-events.js";
import { RunResult } from "../../src/shared/run-result.js";
import { RunSpec } from "../../src/shared/run-spec.js";
import { MAX_BUNDLE_BYTES, runnerPaths } from "../../src/shared/runner-api.js";

export interface FakeRunnerOptions {
  /** The spec to serve; `repository.cloneUrl` is filled in with this runner's git proxy URL. */
  spec: Omit<RunSpec, "repository"> & { repository: Omit<RunSpec["repository"], "cloneUrl"> };
  token: string;
  /** A bare repository on disk named `<something>.git`. */
  bareRepo: string;
  /** The model's base URL (ending in /v1) that /llm/v1 forwards to. */
  modelBaseUrl: string;
  /** Answer the first N `POST /events` calls with 503 (the bot briefly away). */
  failEventPosts?: number;
}

export interface FakeRunner {
  url: string;
  /** Every distinct event, in seq order of arrival. */
  events: AgentEvent[];
  eventPosts: number;
  duplicateEvents: number;
  bundle: Buffer | null;
  result: RunResult | null;
  gitRequests: { method: string; path: string; authorized: boolean }[];
  unauthorized: number;
  cancel(): void;
  sendMessage(author: string, text: string): void;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

export async function startFakeRunner(options: FakeRunnerOptions): Promise<FakeRunner> {
  const sockets = new Set<Socket>();
  const repoName = path.basename(options.bareRepo);
  const projectRoot = path.dirname(options.bareRepo);
  const outbox: { author: string; text: string; ts: string }[] = [];
  const seen = new Set<number>();
  let failuresLeft = options.failEventPosts ?? 0;
  let cancelled = false;
  let messageCounter = 0;
  let spec: RunSpec | null = null;

  const state: FakeRunner = {
    url: "",
    events: [],
    eventPosts: 0,
    duplicateEvents: 0,
    bundle: null,
    result: null,
    gitRequests: [],
    unauthorized: 0,
    cancel: () => {
      cancelled = true;
    },
    sendMessage: (author, text) => {
      messageCounter += 1;
      outbox.push({ author, text, ts: `1700000000.${String(messageCounter).padStart(6, "0")}` });
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const bearerOk = (req: IncomingMessage) => req.headers.authorization === `Bearer ${options.token}`;
  const basicOk = (req: IncomingMessage) => {
    const header = req.headers.authorization ?? "";
    if (!header.startsWith("Basic ")) return false;
    const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
    return decoded.slice(decoded.indexOf(":") + 1) === options.token;
  };

  const serveGit = async (req: IncomingMessage, res: ServerResponse, rest: string, query: string) => {
    const authorized = basicOk(req);
    state.gitRequests.push({ method: req.method ?? "", path: rest, authorized });
    if (!authorized) {
      state.unauthorized++;
      res.writeHead(401, { "content-type": "text/plain" });
      res.end("run token required");
      return;
    }
    // Only fetches of the run's repository: `.../<owner>/<repo>.git/...`, upload-pack only.
    const match = /^\/[^/]+\/([^/]+\.git)(\/.*)$/.exec(rest);
    if (match === null || match[1] !== repoName) {
      res.writeHead(404).end();
      return;
    }
    const subPath = match[2]!;
    if (query.includes("git-receive-pack") || subPath.endsWith("git-receive-pack")) {
      res.writeHead(403, { "content-type": "text/plain" });
      res.end("pushes are refused");
      return;
    }
    const body = await readBody(req, 64 * 1024 * 1024);
    const child = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: `/${repoName}${subPath}`,
        REQUEST_METHOD: req.method ?? "GET",
        QUERY_STRING: query,
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        CONTENT_LENGTH: String(body?.length ?? 0),
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        REMOTE_USER: "baton-agent",
        REMOTE_ADDR: "127.0.0.1",
      },
      stdio: ["pipe", "pipe", "ignore"],
    });
    // http-backend does not read the body of a GET; a write after it exited is not an error here.
    child.stdin.on("error", () => undefined);
    child.stdin.end(body ?? Buffer.alloc(0));
    const out: Buffer[] = [];
    for await (const chunk of child.stdout) out.push(chunk as Buffer);
    const all = Buffer.concat(out);
    const split = all.indexOf("\r\n\r\n");
    const headerText = all.subarray(0, split).toString("utf8");
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of headerText.split("\r\n")) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
      else if (name !== "") headers[name] = value;
    }
    res.writeHead(status, headers);
    res.end(all.subarray(split + 4));
  };

  const proxyLlm = (req: IncomingMessage, res: ServerResponse, rest: string) => {
    if (!bearerOk(req)) {
      state.unauthorized++;
      json(res, 401, {
        error: {
          message: "invalid run token",
          type: "invalid_request_error",
          param: null,
          code: "invalid_api_key",
        },
      });
      return;
    }
    const target = new URL(`${options.modelBaseUrl}${rest}`);
    const upstream = httpRequest(
      target,
      {
        method: req.method,
        headers: {
          "content-type": req.headers["content-type"] ?? "application/json",
          accept: req.headers.accept ?? "*/*",
        },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        // A cut upstream stream must look cut to the agent too.
        answer.on("aborted", () => res.destroy());
        answer.on("error", () => res.destroy());
      },
    );
    upstream.on("error", () => res.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const p = url.pathname;
      if (p.startsWith(`${runnerPaths.git}/`))
        return await serveGit(req, res, p.slice(runnerPaths.git.length), url.search.slice(1));
      if (p.startsWith(`${runnerPaths.llm}/`)) return proxyLlm(req, res, p.slice(runnerPaths.llm.length));
      if (!bearerOk(req)) {
        state.unauthorized++;
        return json(res, 401, { error: "unauthorized" });
      }
      if (req.method === "GET" && p === runnerPaths.run) return json(res, 200, spec);
      if (req.method === "POST" && p === runnerPaths.events) {
        state.eventPosts++;
        const raw = await readBody(req, 8 * 1024 * 1024);
        if (failuresLeft > 0) {
          failuresLeft--;
          return json(res, 503, { error: "briefly away" });
        }
        const parsed = PostEventsBody.safeParse(JSON.parse(raw?.toString("utf8") ?? "{}"));
        if (!parsed.success) return json(res, 400, { error: parsed.error.message });
        for (const event of parsed.data.events) {
          if (seen.has(event.seq)) {
            state.duplicateEvents++;
            continue;
          }
          seen.add(event.seq);
          state.events.push(event);
        }
        const acceptedSeq = Math.max(0, ...seen);
        return json(res, 200, { acceptedSeq, cancelled, messages: outbox.splice(0, outbox.length) });
      }
      if (req.method === "PUT" && p === runnerPaths.bundle) {
        if (req.headers["content-type"] !== "application/octet-stream")
          return json(res, 415, { error: "octet-stream expected" });
        const raw = await readBody(req, MAX_BUNDLE_BYTES);
        if (raw === null) return json(res, 413, { error: "bundle too large" });
        state.bundle = raw;
        return json(res, 200, { ok: true });
      }
      if (req.method === "POST" && p === runnerPaths.result) {
        const raw = await readBody(req, 8 * 1024 * 1024);
        const parsed = RunResult.safeParse(JSON.parse(raw?.toString("utf8") ?? "{}"));
        if (!parsed.success) return json(res, 400, { error: parsed.error.message });
        if (parsed.data.outcome === "changes" && state.bundle === null)
          return json(res, 409, { error: "bundle required first" });
        state.result = parsed.data;
        return json(res, 200, { ok: true });
      }
      return json(res, 404, { error: "not found" });
    })().catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { error: (error as Error).message });
      else res.destroy();
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  state.url = `http://127.0.0.1:${port}`;
  const owner = options.spec.repository.fullName.split("/")[0] ?? "owner";
  spec = RunSpec.parse({
    ...options.spec,
    repository: {
      ...options.spec.repository,
      cloneUrl: `${state.url}${runnerPaths.git}/${owner}/${repoName}`,
    },
  });
  return state;
}
