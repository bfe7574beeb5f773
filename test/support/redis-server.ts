// Starts a real redis-server on a free loopback port for tests (isolation: never the machine's 6379).
// Fault tests use stop()/start() to restart it on the same port with the same data directory.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.ts";

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGKILL, like a crash); data written with appendonly survives. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  close(): Promise<void>;
}

export interface StartRedisOptions {
  port?: number;
  /** Keep data across stop()/start() (AOF). Default true. */
  persistent?: boolean;
}

export async function startRedisServer(options: StartRedisOptions = {}): Promise<TestRedis> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "baton-redis-"));
  const persistent = options.persistent ?? true;
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      persistent ? "yes" : "no",
      "--appendfsync",
      "always",
      "--maxmemory-policy",
      "noeviction",
      "--daemonize",
      "no",
      "--logfile",
      "",
    ];
    const proc = spawn("redis-server", args, { stdio: ["ignore", "ignore", "pipe"] });
    child = proc;
    proc.on("error", () => undefined);
    await waitForPing(port, 10_000);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once("exit", () => resolve());
      proc.kill("SIGKILL");
    });
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ping(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    socket.setTimeout(500);
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      data += chunk.toString();
      if (data.includes("\r\n")) {
        socket.destroy();
        resolve(data.startsWith("+PONG"));
      }
    });
    socket.on("error", () => resolve(false));
    socket.on("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}
