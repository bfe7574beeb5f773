// A git smart-HTTP server for the proxy tests: real `git http-backend` (CGI) over a bare repository,
// reachable only with one Authorization value (Baton's credential). Pushes are enabled upstream so
// that a refused push proves the runner's proxy refused it.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

export interface GitServer {
  url: string;
  authorization: string;
  /** Requests that reached upstream (method and path), in order. */
  seen: string[];
  close(): Promise<void>;
}

export const GIT_ENV = {
  GIT_TERMINAL_PROMPT: "0",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "Test",
  GIT_AUTHOR_EMAIL: "test@example.com",
  GIT_COMMITTER_NAME: "Test",
  GIT_COMMITTER_EMAIL: "test@example.com",
};

export function git(
  args: string[],
  cwd: string,
  home: string,
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("git", args, {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, ...GIT_ENV },
    encoding: "utf8",
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Async git: the servers it talks to live in this same process, so the event loop must keep turning. */
export function gitAsync(
  args: string[],
  cwd: string,
  home: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("git", args, {
      cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, ...GIT_ENV },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** A bare repository `<root>/<owner>/<name>.git` with one commit on main holding README.md. */
export function makeBareRepo(root: string, repo: string, home: string): void {
  const work = join(root, "work", repo);
  mkdirSync(work, { recursive: true });
  git(["init", "-q", "-b", "main"], work, home);
  writeFileSync(join(work, "README.md"), "hello from upstream\n");
  git(["add", "README.md"], work, home);
  git(["commit", "-q", "-m", "first"], work, home);
  const bare = join(root, `${repo}.git`);
  mkdirSync(bare, { recursive: true });
  git(["clone", "-q", "--bare", work, bare], root, home);
  git(["config", "http.receivepack", "true"], bare, home);
}

export async function startGitServer(root: string, authorization: string): Promise<GitServer> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://git.invalid");
    seen.push(`${req.method} ${url.pathname}${url.search}`);
    if (req.headers.authorization !== authorization) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="upstream"' }).end();
      return;
    }
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: url.pathname,
      QUERY_STRING: url.search.slice(1),
      REQUEST_METHOD: req.method ?? "GET",
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: "baton",
      REMOTE_ADDR: "127.0.0.1",
    };
    if (typeof req.headers["git-protocol"] === "string") env.GIT_PROTOCOL = req.headers["git-protocol"];
    if (typeof req.headers["content-encoding"] === "string")
      env.HTTP_CONTENT_ENCODING = req.headers["content-encoding"];
    const cgi = spawn("git", ["http-backend"], { env });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString("utf8").split("\r\n")) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on("close", () => res.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    authorization,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
