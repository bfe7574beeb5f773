// Turns a Job and its pods into the executor's status, with one clear sentence when a run failed
// (out of memory, time limit, image pull, unschedulable, crash). Pure: the caller fetches the objects.
import type { V1Job, V1Pod, V1ContainerStatus } from "@kubernetes/client-node";
import type { ExecutionStatus } from "../../core/ports/executor.js";
import { AGENT_CONTAINER } from "./job-manifest.js";

export interface DiagnoseOptions {
  /** Milliseconds since epoch (the caller's clock). */
  now: number;
  /** How long a pod may stay unschedulable before the run counts as failed (autoscalers need time). */
  unschedulableGraceMs: number;
  /** How long a container may fail to start (bad Secret reference, config error) before failing. */
  startFailureGraceMs: number;
}

export const DEFAULT_DIAGNOSE_OPTIONS: Omit<DiagnoseOptions, "now"> = {
  unschedulableGraceMs: 5 * 60_000,
  startFailureGraceMs: 60_000,
};

const IMAGE_PULL_FAILURES = new Set([
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "RegistryUnavailable",
]);
const START_FAILURES = new Set(["CreateContainerConfigError", "CreateContainerError", "RunContainerError"]);

/** "30 minutes", "1 hour", "90 seconds". */
export function formatDuration(seconds: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? "" : "s"}`;
  if (seconds % 3600 === 0) return plural(seconds / 3600, "hour");
  if (seconds % 60 === 0) return plural(seconds / 60, "minute");
  return plural(seconds, "second");
}

function agentStatus(pod: V1Pod): V1ContainerStatus | undefined {
  const statuses = pod.status?.containerStatuses ?? [];
  return statuses.find((s) => s.name === AGENT_CONTAINER) ?? statuses[0];
}

function memoryLimit(job: V1Job | undefined, pod: V1Pod | undefined): string | undefined {
  const fromPod = pod?.spec?.containers.find((c) => c.name === AGENT_CONTAINER) ?? pod?.spec?.containers[0];
  const fromJob =
    job?.spec?.template.spec?.containers.find((c) => c.name === AGENT_CONTAINER) ??
    job?.spec?.template.spec?.containers[0];
  return fromPod?.resources?.limits?.["memory"] ?? fromJob?.resources?.limits?.["memory"];
}

function agentImage(
  job: V1Job | undefined,
  pod: V1Pod | undefined,
  status: V1ContainerStatus | undefined,
): string {
  const container =
    pod?.spec?.containers.find((c) => c.name === AGENT_CONTAINER) ?? job?.spec?.template.spec?.containers[0];
  return container?.image ?? status?.image ?? "(unknown image)";
}

function sentence(text: string): string {
  const trimmed = text.trim().replace(/\s+/g, " ");
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

function time(value: Date | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

function condition(job: V1Job | undefined, type: string) {
  return job?.status?.conditions?.find((c) => c.type === type && c.status === "True");
}

/** The most relevant pod: the newest one (a Job with backoffLimit 0 has one). */
export function latestPod(pods: readonly V1Pod[]): V1Pod | undefined {
  let best: V1Pod | undefined;
  for (const pod of pods) {
    if (
      !best ||
      (time(pod.metadata?.creationTimestamp) ?? 0) >= (time(best.metadata?.creationTimestamp) ?? 0)
    )
      best = pod;
  }
  return best;
}

function terminatedFailure(
  job: V1Job | undefined,
  pod: V1Pod,
  status: V1ContainerStatus | undefined,
): ExecutionStatus | undefined {
  const terminated = status?.state?.terminated ?? status?.lastState?.terminated;
  if (!terminated) {
    if (pod.status?.phase === "Failed") {
      const why = pod.status.message ? `: ${pod.status.message}` : "";
      return {
        state: "failed",
        reason: "Error",
        message: sentence(`The agent pod failed (${pod.status.reason ?? "unknown reason"})${why}`),
      };
    }
    return undefined;
  }
  if (terminated.reason === "OOMKilled") {
    const limit = memoryLimit(job, pod);
    return {
      state: "failed",
      exitCode: terminated.exitCode,
      reason: "OOMKilled",
      message: `The agent ran out of memory (limit ${limit ?? "unknown"}).`,
    };
  }
  if (terminated.exitCode === 0) return undefined;
  const detail = terminated.message ? `: ${terminated.message}` : "";
  return {
    state: "failed",
    exitCode: terminated.exitCode,
    reason: "Error",
    message: sentence(
      `The agent exited with code ${terminated.exitCode}${terminated.reason && terminated.reason !== "Error" ? ` (${terminated.reason})` : ""}${detail}`,
    ),
  };
}

/**
 * The run's status from its Job and pods. `undefined` job = no such run ("gone"). Failure messages
 * name the cause in one sentence; the log tail is added by the caller.
 */
export function diagnose(
  job: V1Job | undefined,
  pods: readonly V1Pod[],
  options: DiagnoseOptions,
): ExecutionStatus {
  if (!job) return { state: "gone" };
  const pod = latestPod(pods);
  const status = pod ? agentStatus(pod) : undefined;

  const failed = condition(job, "Failed") ?? condition(job, "FailureTarget");
  if (failed) {
    if (failed.reason === "DeadlineExceeded") {
      const limit = job.spec?.activeDeadlineSeconds;
      return {
        state: "failed",
        reason: "DeadlineExceeded",
        ...(status?.state?.terminated ? { exitCode: status.state.terminated.exitCode } : {}),
        message: limit
          ? `The run hit its time limit of ${formatDuration(limit)}.`
          : "The run hit its time limit.",
      };
    }
    const fromPod = pod ? terminatedFailure(job, pod, status) : undefined;
    if (fromPod) return fromPod;
    return {
      state: "failed",
      reason: "Error",
      message: sentence(
        `The agent's Job failed (${failed.reason ?? "unknown reason"})${failed.message ? `: ${failed.message}` : ""}`,
      ),
    };
  }
  if (condition(job, "Complete") ?? condition(job, "SuccessCriteriaMet")) {
    const code = status?.state?.terminated?.exitCode ?? 0;
    return { state: "succeeded", exitCode: code };
  }
  if (job.spec?.suspend === true) return { state: "pending", message: "Waiting for the Job to be released." };
  if (!pod) return { state: "pending", message: "Waiting for the agent pod to be created." };

  // The Job controller may lag behind the pod: a terminated container is already the answer.
  const podFailure = terminatedFailure(job, pod, status);
  if (podFailure && (pod.status?.phase === "Failed" || status?.state?.terminated)) return podFailure;
  if (pod.status?.phase === "Succeeded")
    return { state: "succeeded", exitCode: status?.state?.terminated?.exitCode ?? 0 };

  const waiting = status?.state?.waiting;
  if (waiting?.reason && (IMAGE_PULL_FAILURES.has(waiting.reason) || waiting.reason === "ErrImagePull")) {
    const image = agentImage(job, pod, status);
    const message = sentence(
      `The agent image ${image} could not be pulled (${waiting.reason})${waiting.message ? `: ${waiting.message}` : ""}`,
    );
    // ErrImagePull alone may be a blip; the kubelet's back-off means it keeps failing.
    if (IMAGE_PULL_FAILURES.has(waiting.reason))
      return { state: "failed", reason: "ImagePullBackOff", message };
    return { state: "pending", message };
  }
  if (waiting?.reason && START_FAILURES.has(waiting.reason)) {
    const message = sentence(
      `The agent container could not start (${waiting.reason})${waiting.message ? `: ${waiting.message}` : ""}`,
    );
    const since = time(pod.status?.startTime) ?? time(pod.metadata?.creationTimestamp) ?? options.now;
    if (options.now - since >= options.startFailureGraceMs)
      return { state: "failed", reason: "Error", message };
    return { state: "pending", message };
  }

  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
    const message = sentence(
      `The agent pod could not be scheduled: ${scheduled.message ?? "no node fits it"}`,
    );
    const since = time(scheduled.lastTransitionTime) ?? time(pod.metadata?.creationTimestamp) ?? options.now;
    if (options.now - since >= options.unschedulableGraceMs)
      return { state: "failed", reason: "Unschedulable", message };
    return { state: "pending", message };
  }

  if (pod.status?.phase === "Running" && status?.state?.running) return { state: "running" };
  if (pod.status?.phase === "Running") return { state: "running" };
  return {
    state: "pending",
    ...(waiting?.reason ? { message: sentence(`The agent container is waiting (${waiting.reason})`) } : {}),
  };
}

/** True for statuses that will not change any more. */
export function isFinal(status: ExecutionStatus): boolean {
  return status.state === "succeeded" || status.state === "failed" || status.state === "gone";
}
