// Spawns bench/children/bot.ts (the real bot or a bare Bolt app) and talks to it over IPC.
import { fork, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ChildMessage, type ChildConfig } from "../children/protocol.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ENTRY = path.join(HERE, "..", "children", "bot.ts");
const LOADER = path.join(HERE, "..", "loader.mjs");

type Stats = Extract<ChildMessage, { type: "stats" }>;

export interface BotChild {
  port: number;
  pid: number;
  stats(): Promise<Stats>;
  reset(): void;
  stop(): Promise<void>;
}

export async function startBotChild(config: ChildConfig, timeoutMs = 30_000): Promise<BotChild> {
  const child: ChildProcess = fork(ENTRY, [], {
    execArgv: ["--import", LOADER],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", BENCH_CHILD: JSON.stringify(config) },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  // The bot's own log (warnings and errors), kept for looking into a surprising figure.
  const logFile = path.join(HERE, "..", "results", `${config.kind}-${child.pid}.log`);
  const log = createWriteStream(logFile);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString("utf8");
  });
  const waiters: ((m: ChildMessage) => boolean)[] = [];
  child.on("message", (raw) => {
    const message = ChildMessage.parse(raw);
    const index = waiters.findIndex((w) => w(message));
    if (index >= 0) waiters.splice(index, 1);
  });
  const next = <T extends ChildMessage["type"]>(type: T, ms = timeoutMs) =>
    new Promise<Extract<ChildMessage, { type: T }>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`bench child: no ${type} within ${ms} ms; stderr:\n${stderr}`)),
        ms,
      );
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        reject(new Error(`bench child exited (${code}) while waiting for ${type}; stderr:\n${stderr}`));
      };
      child.once("exit", onExit);
      waiters.push((m) => {
        if (m.type !== type) return false;
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(m as Extract<ChildMessage, { type: T }>);
        return true;
      });
    });
  let ready: Extract<ChildMessage, { type: "ready" }>;
  try {
    ready = await next("ready");
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return {
    port: ready.port,
    pid: child.pid!,
    async stats() {
      const reply = next("stats");
      child.send({ type: "stats" });
      return await reply;
    },
    reset() {
      child.send({ type: "reset" });
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.send({ type: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
