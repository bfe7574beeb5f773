// The engine seam: an engine gets the run spec, the checked-out workspace and the runner's side
// channels (events, evidence, thread messages, cancellation) and returns an outcome. The runner
// client, git and bundle code around it do not change when a second engine (e.g. `codex exec
// --json`, its events mapped onto ours) is added next to the built-in one.
import type { RunSpec, ThreadMessage } from "../shared/run-spec.js";
import type { AgentsMdFile } from "./agents-md.js";
import type { NewEvent } from "./event-stream.js";
import type { ToolHost } from "./tools/index.js";

export type FailureCode =
  | "model_unavailable"
  | "model_error"
  | "budget_exhausted"
  | "step_limit"
  | "token_limit"
  | "timeout"
  | "no_progress"
  | "cancelled"
  | "infrastructure";

export type EngineOutcome =
  | { kind: "plan"; summary: string; steps: string[] }
  | { kind: "finished"; summary: string }
  | { kind: "failed"; code: FailureCode; message: string; retryable: boolean }
  | { kind: "cancelled" };

/** Knobs with safe defaults; the agent's environment may tune them (tests shorten the timeouts). */
export interface EngineTuning {
  /** A model stream with no bytes for this long is cut and retried. */
  modelIdleTimeoutMs: number;
  /** First retry delay for model calls; doubles per attempt. */
  retryBaseMs: number;
  retryMaxDelayMs: number;
  /** Attempts per model turn (first call included). */
  maxModelAttempts: number;
  /** Conversation size (characters of JSON) above which older context is elided. */
  contextHighChars: number;
  /** Size the conversation is brought back under when it is compacted. */
  contextLowChars: number;
}

export const DEFAULT_TUNING: EngineTuning = {
  // Reasoning models may think for minutes before their first token.
  modelIdleTimeoutMs: 300_000,
  retryBaseMs: 1_000,
  retryMaxDelayMs: 30_000,
  maxModelAttempts: 6,
  contextHighChars: 240_000,
  contextLowChars: 150_000,
};

export interface EngineContext {
  spec: RunSpec;
  /** Absolute path of the repository checkout. */
  workspace: string;
  agentsMd: AgentsMdFile[];
  /** Tool side effects: evidence, changed files, plan updates. */
  host: ToolHost;
  emit(event: NewEvent): void;
  /** Flushes events and fetches cancellation and new thread messages (call before each turn). */
  sync(): Promise<void>;
  /** Thread messages that arrived since the last call. */
  takeMessages(): ThreadMessage[];
  isCancelled(): boolean;
  /** The runner's OpenAI-compatible gateway and the key for it (the run token). */
  llm: { baseUrl: string; apiKey: string };
  /** Epoch ms when the wall-clock limit ends the run. */
  deadline: number;
  signal: AbortSignal;
  tuning: EngineTuning;
  log(message: string, fields?: Record<string, unknown>): void;
}

export interface Engine {
  readonly name: string;
  run(context: EngineContext): Promise<EngineOutcome>;
}
