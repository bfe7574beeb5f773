// Shared shapes and helpers of the benchmarks: result rows, percentiles, polling, process memory.
import { readFileSync } from "node:fs";

/** One line of the final table: a figure, its baseline from the same run, and the target. */
export interface Row {
  id: string;
  figure: string;
  value: number;
  baseline: number | null;
  unit: string;
  /** What the target is, in words (printed as is). */
  target: string;
  pass: boolean;
}

/** A correctness property (no duplicates, no lost tasks, no 429, caps held): failing one fails the run. */
export interface Invariant {
  id: string;
  name: string;
  ok: boolean;
  detail: string;
}

export interface BenchOutcome {
  rows: Row[];
  invariants: Invariant[];
  /** Raw figures for the JSON output. */
  details: Record<string, unknown>;
}

export type Bench = (ctx: BenchContext) => Promise<BenchOutcome>;

export interface BenchContext {
  redisUrl: string;
  log(message: string): void;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Polls `fn` until it returns something truthy; throws with `what` after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  timeoutMs = 30_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resident set size of another process in bytes (Linux /proc), or undefined once it has gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export const MiB = 1024 * 1024;
