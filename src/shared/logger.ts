// Structured logging (pino). Every string that reaches a log line passes through `redact` first,
// so a secret in an error message or a payload never lands in the logs.
import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Removes secrets from text; applied to the message and to every string field. */
  redact?: (text: string) => string;
  /** Where to write; stderr by default (stdout stays free for command output). */
  destination?: NodeJS.WritableStream;
  base?: Record<string, unknown>;
}

function scrub(value: unknown, redact: (t: string) => string, depth = 0): unknown {
  if (typeof value === "string") return redact(value);
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) {
    return {
      type: value.name,
      message: redact(value.message),
      ...(value.stack ? { stack: redact(value.stack) } : {}),
    };
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, redact, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrub(v, redact, depth + 1);
  return out;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const redact = options.redact ?? ((t: string) => t);
  return pino(
    {
      level: options.level ?? "info",
      base: options.base ?? { app: "baton" },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => scrub(a, redact)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
    },
    (options.destination ?? process.stderr) as pino.DestinationStream,
  );
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
