// The read-only git proxy (`/runner/v1/git/<owner>/<name>.git/…`, CONTRACT §7): smart HTTP
// upload-pack only, for the run's own repository, forwarded to the git host with Baton's credential
// (the agent authenticates with its run token and never holds a git credential). Pushes get 403.
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { GitHost } from "../../core/ports/git-host.js";
import type { Logger } from "../../shared/logger.js";
import type { RunRecord } from "../redis/run-records.js";
import { HttpError } from "./http.js";

const GIT_PATH =
  /^\/git\/([A-Za-z0-9][A-Za-z0-9-]*)\/([A-Za-z0-9._-]+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/;
/** Request headers git sends that upstream needs; nothing else (no agent credential) is forwarded. */
const FORWARDED_REQUEST_HEADERS = [
  "content-type",
  "content-encoding",
  "accept",
  "git-protocol",
  "user-agent",
];
const FORWARDED_RESPONSE_HEADERS = ["content-type", "cache-control", "expires", "pragma"];

export interface GitProxyDeps {
  gitHost: GitHost;
  logger: Logger;
  fetch?: typeof fetch;
}

export interface ParsedGitPath {
  repo: string;
  service: "info/refs" | "git-upload-pack" | "git-receive-pack";
}

export function parseGitPath(path: string): ParsedGitPath | undefined {
  const match = GIT_PATH.exec(path);
  if (!match) return undefined;
  return { repo: `${match[1]}/${match[2]}`, service: match[3] as ParsedGitPath["service"] };
}

export interface GitProxy {
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    record: RunRecord,
    path: string,
    query: URLSearchParams,
  ): Promise<void>;
}

export function createGitProxy(deps: GitProxyDeps): GitProxy {
  const doFetch = deps.fetch ?? fetch;
  return {
    async handle(req, res, record, path, query) {
      const parsed = parseGitPath(path);
      if (!parsed) throw new HttpError(404, "not a git smart-HTTP path");
      const service = query.get("service");
      if (parsed.service === "git-receive-pack" || service === "git-receive-pack") {
        throw new HttpError(
          403,
          "the git proxy is read-only: Baton pushes from the bundle, agents never push",
        );
      }
      if (parsed.repo.toLowerCase() !== record.repo.toLowerCase()) {
        throw new HttpError(403, "this run token is for another repository");
      }
      let upstreamPath: string;
      if (parsed.service === "info/refs") {
        if (req.method !== "GET" || service !== "git-upload-pack")
          throw new HttpError(403, "only git-upload-pack is served");
        upstreamPath = "/info/refs?service=git-upload-pack";
      } else {
        if (req.method !== "POST") throw new HttpError(405, "git-upload-pack takes POST");
        upstreamPath = "/git-upload-pack";
      }

      const remote = await deps.gitHost.gitRemote(record.repo);
      const headers: Record<string, string> = { authorization: remote.authorization };
      for (const name of FORWARDED_REQUEST_HEADERS) {
        const value = req.headers[name];
        if (typeof value === "string") headers[name] = value;
      }
      const abort = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) abort.abort();
      });
      const init: RequestInit & { duplex?: "half" } = {
        method: req.method ?? "GET",
        headers,
        signal: abort.signal,
      };
      if (req.method === "POST") {
        init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
        init.duplex = "half";
      }
      let upstream: Response;
      try {
        upstream = await doFetch(`${remote.url.replace(/\/+$/, "")}${upstreamPath}`, init);
      } catch (error) {
        deps.logger.warn({ runId: record.runId, repo: record.repo, err: error }, "git upstream unreachable");
        throw new HttpError(502, "the git host could not be reached");
      }
      if (!upstream.ok) {
        await upstream.body?.cancel();
        deps.logger.warn(
          { runId: record.runId, repo: record.repo, status: upstream.status },
          "git upstream refused",
        );
        // Never relay the host's auth challenge: the agent's token is not a git host credential.
        throw new HttpError(upstream.status === 404 ? 404 : 502, `the git host answered ${upstream.status}`);
      }
      const responseHeaders: Record<string, string> = {};
      for (const name of FORWARDED_RESPONSE_HEADERS) {
        const value = upstream.headers.get(name);
        if (value !== null) responseHeaders[name] = value;
      }
      res.writeHead(upstream.status, responseHeaders);
      if (!upstream.body) {
        res.end();
        return;
      }
      try {
        for await (const chunk of upstream.body) {
          if (res.destroyed) break;
          if (!res.write(chunk as Uint8Array)) {
            await new Promise<void>((done) => {
              res.once("drain", done);
              res.once("close", done);
            });
          }
        }
      } finally {
        res.end();
      }
    },
  };
}
