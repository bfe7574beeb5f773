// The one HTTP server (CONTRACT §4): Slack ingress, health, readiness, metrics and mounted routes
// (the runner API). Bodies for Slack are read here with a hard 1 MiB cap; errors never leak a stack.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../../shared/logger.js";
import type { Metrics } from "../metrics/metrics.js";

export const SLACK_EVENTS_PATH = "/slack/events";
export const MAX_SLACK_BODY_BYTES = 1024 * 1024;

/** A Slack request as received: the raw body is needed for the signature check. */
export interface SlackHttpRequest {
  headers: IncomingMessage["headers"];
  rawBody: Buffer;
}

export interface SlackHttpResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export type SlackHttpHandler = (request: SlackHttpRequest) => Promise<SlackHttpResponse>;

/** A mounted route family, e.g. the runner API at `/runner/v1`. */
export interface RouteHandler {
  prefix: string;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean>;
}

export interface HttpServerOptions {
  slackHandler?: SlackHttpHandler;
  routes?: readonly RouteHandler[];
  readiness?: readonly ReadinessCheck[];
  metrics: Metrics;
  logger: Logger;
  /** Per readiness check; a check that does not answer in time counts as failed. */
  readinessTimeoutMs?: number;
}

export interface HttpServer {
  listen(port: number, host?: string): Promise<{ port: number; host: string }>;
  close(): Promise<void>;
  /** The bound address once listening. */
  address(): { port: number; host: string } | undefined;
  /** The underlying server (for tests and graceful shutdown hooks). */
  readonly server: Server;
}

class BodyTooLargeError extends Error {
  constructor() {
    super("request body too large");
    this.name = "BodyTooLargeError";
  }
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(body);
}

/** Reads a body up to `limit` bytes; rejects with BodyTooLargeError as soon as it would exceed it. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        req.off("data", onData);
        req.pause();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    });
    req.once("error", (error) => {
      if (done) return;
      done = true;
      reject(error);
    });
    req.once("aborted", () => {
      if (done) return;
      done = true;
      reject(new Error("request aborted"));
    });
  });
}

async function withTimeout(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      check().catch(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { logger, metrics } = options;
  const routes = [...(options.routes ?? [])].sort((a, b) => b.prefix.length - a.prefix.length);
  const readiness = options.readiness ?? [];
  const readinessTimeoutMs = options.readinessTimeoutMs ?? 2000;

  const handleSlack = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const handler = options.slackHandler;
    if (!handler) return send(res, 404, "not found\n");
    if (req.method !== "POST") return send(res, 405, "method not allowed\n", { allow: "POST" });
    // Refuse an announced oversize body without reading a byte of it; close the connection so
    // the client cannot keep streaming into it.
    const declared = Number(req.headers["content-length"] ?? "0");
    if (Number.isFinite(declared) && declared > MAX_SLACK_BODY_BYTES) {
      return tooLarge(req, res);
    }
    let rawBody: Buffer;
    try {
      rawBody = await readBody(req, MAX_SLACK_BODY_BYTES);
    } catch (error) {
      if (error instanceof BodyTooLargeError) return tooLarge(req, res);
      logger.debug({ err: error }, "slack request body could not be read");
      if (!res.headersSent && !res.destroyed) send(res, 400, "bad request\n");
      return;
    }
    const answer = await handler({ headers: req.headers, rawBody });
    if (res.headersSent || res.destroyed) return;
    res.writeHead(answer.status, {
      "content-type":
        answer.body && answer.body.startsWith("{") ? "application/json" : "text/plain; charset=utf-8",
      ...answer.headers,
    });
    res.end(answer.body ?? "");
  };

  const tooLarge = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(413, { "content-type": "text/plain; charset=utf-8", connection: "close" });
    res.end("request body too large\n", () => req.socket.destroy());
  };

  const handleReady = async (res: ServerResponse): Promise<void> => {
    const results = await Promise.all(
      readiness.map(async (r) => [r.name, await withTimeout(() => r.check(), readinessTimeoutMs)] as const),
    );
    const ok = results.every(([, passed]) => passed);
    const body = JSON.stringify({ ok, checks: Object.fromEntries(results) });
    send(res, ok ? 200 : 503, `${body}\n`, { "content-type": "application/json" });
  };

  const dispatch = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (path === SLACK_EVENTS_PATH) return handleSlack(req, res);
    if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) return send(res, 200, "ok\n");
    if (path === "/readyz" && (req.method === "GET" || req.method === "HEAD")) return handleReady(res);
    if (path === "/metrics" && req.method === "GET") {
      const text = await metrics.registry.metrics();
      return send(res, 200, text, { "content-type": metrics.registry.contentType });
    }
    const route = routes.find((r) => path === r.prefix || path.startsWith(`${r.prefix}/`));
    if (route) return route.handle(req, res);
    send(res, 404, "not found\n");
  };

  const server = createServer((req, res) => {
    dispatch(req, res).catch((error: unknown) => {
      // Never a stack trace in a response: log it, answer a bare 500.
      logger.error({ err: error, path: (req.url ?? "").split("?")[0] }, "http request failed");
      if (!res.headersSent && !res.destroyed) send(res, 500, "internal error\n");
      else res.end();
    });
  });
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });

  let bound: { port: number; host: string } | undefined;
  return {
    server,
    async listen(port, host = "0.0.0.0") {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const address = server.address() as AddressInfo;
      bound = { port: address.port, host: address.address };
      logger.info({ port: bound.port, host: bound.host }, "http server listening");
      return bound;
    },
    async close() {
      if (!server.listening) return;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // In-flight requests get a moment to finish; then whatever is left is cut.
        setTimeout(() => server.closeAllConnections(), 5000).unref();
      });
      bound = undefined;
    },
    address: () => bound,
  };
}
