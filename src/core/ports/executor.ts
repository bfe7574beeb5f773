// Port: where agent runs execute (adapters: src/adapters/kubernetes/executor.ts, src/adapters/local/executor.ts).
import type { RunPhase } from "../../shared/run-spec.js";

export interface LaunchRequest {
  runId: string;
  taskId: string;
  phase: RunPhase;
  attempt: number;
  /** `owner/name`, for labels and per-repository images. */
  repo: string;
  /** The run's plaintext token (stored hashed by the runner API; handed to the agent only). */
  runToken: string;
  /** Agent image (Kubernetes executor). */
  image: string;
  /** Hard deadline for the run. */
  timeoutSeconds: number;
  /** URL at which the agent reaches the runner API. */
  runnerUrl: string;
}

/** Why a run's process or pod ended badly, as far as the executor can tell. */
export type ExecutorFailureReason =
  "OOMKilled" | "DeadlineExceeded" | "ImagePullBackOff" | "Unschedulable" | "Error" | "Cancelled" | "Lost";

export type ExecutionStatus =
  | { state: "pending"; message?: string }
  | { state: "running" }
  | { state: "succeeded"; exitCode: number }
  | {
      state: "failed";
      exitCode?: number;
      reason: ExecutorFailureReason;
      /** One clear sentence for the thread, e.g. "The agent ran out of memory (limit 2Gi)." */
      message: string;
      /** Last lines of the agent's output. */
      logTail?: string;
    }
  /** No such run (never launched, or cleaned up). */
  | { state: "gone" };

export interface ExecutorRun {
  runId: string;
  taskId: string;
  status: ExecutionStatus;
}

export interface Executor {
  readonly kind: "local" | "kubernetes";
  /** Starts the run; a second launch of the same run id is "already_launched", never a second process or Job. */
  launch(request: LaunchRequest): Promise<"launched" | "already_launched">;
  status(runId: string): Promise<ExecutionStatus>;
  /** Follows every run's status; returns a function that stops watching. Re-lists after reconnects. */
  watch(onStatus: (run: ExecutorRun) => void): () => void;
  /** Stops the run (Kubernetes: delete the Job with background propagation). Idempotent. */
  cancel(runId: string): Promise<void>;
  /** Every run the executor knows of (for reconciliation on start). */
  list(): Promise<ExecutorRun[]>;
  /** True while the executor's backend answers (readiness). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}
