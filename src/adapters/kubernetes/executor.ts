// The Kubernetes executor: launches each run as a suspended Job plus an owned run-token Secret, then
// releases it; follows Jobs and pods with list+watch (re-list on 410, reconnect with back-off,
// periodic reconcile); cancels with background propagation; diagnoses failures with the log tail.
import {
  BatchV1Api,
  CoreV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type V1Job,
  type V1Pod,
  type V1Secret,
} from "@kubernetes/client-node";
import type { ExecutionStatus, Executor, ExecutorRun, LaunchRequest } from "../../core/ports/executor.js";
import type { Logger } from "../../shared/logger.js";
import { silentLogger } from "../../shared/logger.js";
import { loadKubeConfig } from "./access-check.js";
import { describeError, httpStatusOf } from "./errors.js";
import { DEFAULT_DIAGNOSE_OPTIONS, diagnose, isFinal, latestPod } from "./diagnose.js";
import {
  AGENT_CONTAINER,
  ANNOTATION_RUN_ID,
  ANNOTATION_TASK_ID,
  AGENT_SELECTOR,
  LABEL_RUN_ID,
  LABEL_TASK_ID,
  RUN_TOKEN_KEY,
  buildAgentJob,
  jobNameFor,
  labelValueFor,
  ownedSecret,
  type AgentResources,
} from "./job-manifest.js";

export interface KubernetesExecutorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  resources?: AgentResources;
  ttlSecondsAfterFinished?: number;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** Full re-list of Jobs and pods this often while watching (catches anything a watch missed). */
  reconcileIntervalMs?: number;
  /** Reconnect back-off after a failed watch or list. */
  backoff?: { initialMs: number; maxMs: number };
  /** Server-side watch timeout (keep it under 30 s, client-node's idle timeout); watches are renewed from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  logTailLines?: number;
  unschedulableGraceMs?: number;
  startFailureGraceMs?: number;
  /** Removes secrets from pod log tails before they leave the executor. */
  redact?: (text: string) => string;
  logger?: Logger;
  now?: () => number;
  /** Upper bound for a readiness probe of the API server. */
  readyTimeoutMs?: number;
}

interface ResolvedOptions {
  reconcileIntervalMs: number;
  backoff: { initialMs: number; maxMs: number };
  watchTimeoutSeconds: number;
  logTailLines: number;
  unschedulableGraceMs: number;
  startFailureGraceMs: number;
  readyTimeoutMs: number;
}

type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
interface Metadata {
  name?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
}

/** Task ids are `T-XXXXXX`; labels hold them in lower case (CONTRACT §6). */
function taskIdFromLabel(value: string | undefined): string {
  if (value === undefined) return "";
  return /^t-[0-9a-z]{6}$/.test(value) ? value.toUpperCase() : value;
}

/** The run and task ids of an agent object: exact from annotations, else from the labels. */
function idsOf(
  object:
    { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } } | undefined,
): {
  runId?: string;
  taskId: string;
} {
  const labels = object?.metadata?.labels ?? {};
  const annotations = object?.metadata?.annotations ?? {};
  const runId = annotations[ANNOTATION_RUN_ID] ?? labels[LABEL_RUN_ID];
  return {
    ...(runId ? { runId } : {}),
    taskId: annotations[ANNOTATION_TASK_ID] ?? taskIdFromLabel(labels[LABEL_TASK_ID]),
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * One list+watch loop for a resource: lists, then watches from the list's resourceVersion;
 * reconnects from the last seen version (with back-off after failures) and re-lists on 410 Gone or
 * when asked to (periodic reconcile).
 */
class ListWatch<T extends { metadata?: Metadata }> {
  private resourceVersion: string | undefined;
  private needRelist = true;
  private current: AbortController | undefined;
  private readonly stopped = new AbortController();
  private wake: (() => void) | undefined;
  private failures = 0;
  private consecutiveGone = 0;

  constructor(
    private readonly what: string,
    private readonly list: () => Promise<{ items: T[]; resourceVersion: string | undefined }>,
    private readonly watchPath: string,
    private readonly watcher: Watch,
    private readonly selector: string,
    private readonly options: ResolvedOptions,
    private readonly onReset: (items: T[]) => void,
    private readonly onEvent: (type: "ADDED" | "MODIFIED" | "DELETED", object: T) => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    void this.loop();
  }

  /** Forces a fresh list (the periodic reconcile). */
  relist(): void {
    this.needRelist = true;
    this.current?.abort();
    this.wake?.();
  }

  stop(): void {
    this.stopped.abort();
    this.current?.abort();
    this.wake?.();
  }

  private async backoff(): Promise<void> {
    const { initialMs, maxMs } = this.options.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures, 16));
    this.failures += 1;
    // Jitter so that many replicas do not reconnect in lockstep.
    await sleep(delay / 2 + Math.random() * (delay / 2), this.stopped.signal);
  }

  private async loop(): Promise<void> {
    while (!this.stopped.signal.aborted) {
      if (this.needRelist || this.resourceVersion === undefined) {
        try {
          const { items, resourceVersion } = await this.list();
          if (this.stopped.signal.aborted) return;
          this.resourceVersion = resourceVersion;
          this.needRelist = false;
          this.onReset(items);
          this.failures = 0;
        } catch (error) {
          this.logger.warn(
            { err: describeError(error), what: this.what },
            "kubernetes list failed; retrying",
          );
          await this.backoff();
          continue;
        }
      }
      const startedAt = Date.now();
      const outcome = await this.watchOnce();
      if (this.stopped.signal.aborted) return;
      if (outcome === "gone") {
        this.logger.info({ what: this.what }, "kubernetes watch expired (410); re-listing");
        this.needRelist = true;
        this.consecutiveGone += 1;
        // A server that answers 410 right after a fresh list must not be hammered.
        if (this.consecutiveGone > 1) await this.backoff();
        continue;
      }
      this.consecutiveGone = 0;
      if (outcome === "error") await this.backoff();
      else if (!this.needRelist && outcome === "empty" && Date.now() - startedAt < 1000) {
        // Closed at once without a single event: back off instead of spinning.
        await this.backoff();
      }
    }
  }

  /**
   * Runs one watch connection to its end: "closed" (renew), "empty" (closed without any event),
   * "gone" (re-list) or "error" (back off).
   */
  private watchOnce(): Promise<"closed" | "empty" | "gone" | "error"> {
    return new Promise((resolve) => {
      let gone = false;
      let sawEvent = false;
      let settled = false;
      const finish = (outcome: "closed" | "empty" | "gone" | "error") => {
        if (settled) return;
        settled = true;
        this.wake = undefined;
        resolve(outcome);
      };
      this.wake = () => finish("closed");
      const query: Record<string, string | number | boolean> = {
        labelSelector: this.selector,
        allowWatchBookmarks: true,
        timeoutSeconds: this.options.watchTimeoutSeconds,
      };
      if (this.resourceVersion !== undefined) query["resourceVersion"] = this.resourceVersion;
      this.watcher
        .watch(
          this.watchPath,
          query,
          (type: string, object: unknown) => {
            const event = type as WatchEventType;
            if (event === "ERROR") {
              const status = object as { code?: number; reason?: string; message?: string };
              if (status.code === 410 || status.reason === "Expired" || status.reason === "Gone") gone = true;
              else
                this.logger.warn({ what: this.what, status: status.message }, "kubernetes watch error event");
              return;
            }
            const item = object as T;
            const version = item.metadata?.resourceVersion;
            if (version) this.resourceVersion = version;
            sawEvent = true;
            if (event === "BOOKMARK") return;
            if (event === "ADDED" || event === "MODIFIED" || event === "DELETED") this.onEvent(event, item);
          },
          (error: unknown) => {
            if (gone || httpStatusOf(error) === 410) return finish("gone");
            if (
              error &&
              !this.stopped.signal.aborted &&
              !(error instanceof Error && error.name === "AbortError")
            ) {
              const timeout = error instanceof Error && error.name === "TimeoutError";
              if (!timeout) {
                this.logger.warn(
                  { what: this.what, err: describeError(error) },
                  "kubernetes watch failed; reconnecting",
                );
                return finish("error");
              }
            }
            if (sawEvent) this.failures = 0;
            finish(sawEvent ? "closed" : "empty");
          },
        )
        .then((controller) => {
          this.current = controller;
          if (settled || this.stopped.signal.aborted) controller.abort();
        })
        .catch((error: unknown) => {
          this.logger.warn(
            { what: this.what, err: describeError(error) },
            "kubernetes watch could not start",
          );
          finish("error");
        });
    });
  }
}

/** The Kubernetes implementation of the Executor port (CONTRACT §6). */
export class KubernetesExecutor implements Executor {
  readonly kind = "kubernetes" as const;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly watcher: Watch;
  private readonly namespace: string;
  private readonly options: ResolvedOptions;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly redact: (text: string) => string;

  // Shared watch state (one list+watch per resource, however many subscribers).
  private readonly subscribers = new Set<(run: ExecutorRun) => void>();
  private readonly jobs = new Map<string, V1Job>();
  private readonly pods = new Map<string, V1Pod>();
  private readonly lastEmitted = new Map<string, string>();
  private readonly ids = new Map<string, { runId: string; taskId: string }>();
  private readonly emitChains = new Map<string, Promise<void>>();
  private streams: ListWatch<V1Job | V1Pod>[] = [];
  private reconcileTimer: NodeJS.Timeout | undefined;
  private pendingTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly config: KubernetesExecutorOptions) {
    this.batch = config.kubeConfig.makeApiClient(BatchV1Api);
    this.core = config.kubeConfig.makeApiClient(CoreV1Api);
    this.watcher = new Watch(config.kubeConfig);
    this.namespace = config.namespace;
    this.options = {
      reconcileIntervalMs: config.reconcileIntervalMs ?? 30_000,
      backoff: config.backoff ?? { initialMs: 500, maxMs: 30_000 },
      // Below client-node's 30 s inactivity timeout: idle watches end cleanly and are renewed.
      watchTimeoutSeconds: config.watchTimeoutSeconds ?? 25,
      logTailLines: config.logTailLines ?? 40,
      unschedulableGraceMs: config.unschedulableGraceMs ?? DEFAULT_DIAGNOSE_OPTIONS.unschedulableGraceMs,
      startFailureGraceMs: config.startFailureGraceMs ?? DEFAULT_DIAGNOSE_OPTIONS.startFailureGraceMs,
      readyTimeoutMs: config.readyTimeoutMs ?? 5_000,
    };
    this.logger = config.logger ?? silentLogger();
    this.now = config.now ?? Date.now;
    this.redact = config.redact ?? ((t) => t);
  }

  async launch(request: LaunchRequest): Promise<"launched" | "already_launched"> {
    this.assertOpen();
    const { job, secret } = buildAgentJob({
      namespace: this.namespace,
      runId: request.runId,
      taskId: request.taskId,
      phase: request.phase,
      attempt: request.attempt,
      repo: request.repo,
      image: request.image,
      runnerUrl: request.runnerUrl,
      runToken: request.runToken,
      // activeDeadlineSeconds is an integer; a fractional policy value rounds up, never to zero.
      timeoutSeconds: Math.max(1, Math.ceil(request.timeoutSeconds)),
      ...(this.config.resources ? { resources: this.config.resources } : {}),
      ...(this.config.ttlSecondsAfterFinished !== undefined
        ? { ttlSecondsAfterFinished: this.config.ttlSecondsAfterFinished }
        : {}),
      ...(this.config.imagePullPolicy ? { imagePullPolicy: this.config.imagePullPolicy } : {}),
    });
    const name = job.metadata?.name ?? jobNameFor(request.runId);
    const log = this.logger.child({ runId: request.runId, taskId: request.taskId, job: name });

    let outcome: "launched" | "already_launched" = "launched";
    let live: V1Job | undefined;
    // A 409 whose Job vanishes before we read it (deleted meanwhile) is retried a few times.
    for (let tries = 0; tries < 3 && !live; tries += 1) {
      try {
        live = await this.batch.createNamespacedJob({ namespace: this.namespace, body: job });
        outcome = "launched";
      } catch (error) {
        if (httpStatusOf(error) !== 409)
          throw new Error(`creating Job ${name} failed: ${describeError(error)}`, { cause: error });
        outcome = "already_launched";
        live = await this.readJob(name);
      }
    }
    if (!live) throw new Error(`Job ${name} exists but cannot be read`);
    const liveRunId = live.metadata?.labels?.[LABEL_RUN_ID];
    if (liveRunId !== labelValueFor(request.runId)) {
      throw new Error(`Job ${name} belongs to another run (${liveRunId ?? "no run id label"})`);
    }
    // A suspended Job was never released: finish the launch (a previous worker may have died here).
    if (live.spec?.suspend === true && !live.metadata?.deletionTimestamp) {
      const uid = live.metadata?.uid;
      if (!uid) throw new Error(`Job ${name} has no uid`);
      try {
        await this.ensureSecret(ownedSecret(secret, { name, uid }), uid);
      } catch (error) {
        if (outcome === "launched") {
          // Do not leave a Job behind that can never start.
          await this.deleteJob(name).catch((cleanup: unknown) =>
            log.warn({ err: describeError(cleanup) }, "cleanup after a failed launch failed"),
          );
        }
        throw new Error(`creating Secret ${name} failed: ${describeError(error)}`, { cause: error });
      }
      await this.batch.patchNamespacedJob(
        { name, namespace: this.namespace, body: { spec: { suspend: false } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    }
    log.info({ outcome }, "agent job launched");
    return outcome;
  }

  async status(runId: string): Promise<ExecutionStatus> {
    this.assertOpen();
    const name = jobNameFor(runId);
    const job = await this.readJob(name);
    if (!job) return { state: "gone" };
    const pods = await this.podsOf(runId);
    return await this.withLogTail(this.diagnose(job, pods), pods);
  }

  watch(onStatus: (run: ExecutorRun) => void): () => void {
    this.assertOpen();
    this.subscribers.add(onStatus);
    if (this.subscribers.size === 1) this.startWatching();
    return () => {
      this.subscribers.delete(onStatus);
      if (this.subscribers.size === 0) this.stopWatching();
    };
  }

  async cancel(runId: string): Promise<void> {
    this.assertOpen();
    const name = jobNameFor(runId);
    await this.deleteJob(name);
    // The garbage collector removes the Secret with the Job; deleting it too closes the token's
    // window at once (404 = already gone).
    try {
      await this.core.deleteNamespacedSecret({ name, namespace: this.namespace });
    } catch (error) {
      if (httpStatusOf(error) !== 404)
        throw new Error(`deleting Secret ${name} failed: ${describeError(error)}`, { cause: error });
    }
  }

  async list(): Promise<ExecutorRun[]> {
    this.assertOpen();
    const [jobs, pods] = await Promise.all([
      this.batch.listNamespacedJob({ namespace: this.namespace, labelSelector: AGENT_SELECTOR }),
      this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: AGENT_SELECTOR }),
    ]);
    const runs: ExecutorRun[] = [];
    for (const job of jobs.items) {
      const label = job.metadata?.labels?.[LABEL_RUN_ID];
      const { runId, taskId } = idsOf(job);
      if (!label || !runId) continue;
      const own = pods.items.filter((p) => p.metadata?.labels?.[LABEL_RUN_ID] === label);
      const status = await this.withLogTail(this.diagnose(job, own), own);
      runs.push({ runId, taskId, status });
    }
    return runs;
  }

  async ready(): Promise<boolean> {
    if (this.closed) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.options.readyTimeoutMs);
    });
    const probe = this.batch
      .listNamespacedJob({ namespace: this.namespace, labelSelector: AGENT_SELECTOR, limit: 1 })
      .then(() => true)
      .catch((error: unknown) => {
        this.logger.warn({ err: describeError(error) }, "kubernetes API server not ready");
        return false;
      });
    try {
      return await Promise.race([probe, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscribers.clear();
    this.stopWatching();
    await Promise.allSettled([...this.emitChains.values()]);
  }

  // --- internals -------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new Error("the Kubernetes executor is closed");
  }

  private diagnose(job: V1Job | undefined, pods: readonly V1Pod[]): ExecutionStatus {
    return diagnose(job, pods, {
      now: this.now(),
      unschedulableGraceMs: this.options.unschedulableGraceMs,
      startFailureGraceMs: this.options.startFailureGraceMs,
    });
  }

  private async readJob(name: string): Promise<V1Job | undefined> {
    try {
      return await this.batch.readNamespacedJob({ name, namespace: this.namespace });
    } catch (error) {
      if (httpStatusOf(error) === 404) return undefined;
      throw new Error(`reading Job ${name} failed: ${describeError(error)}`, { cause: error });
    }
  }

  private async podsOf(runId: string): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({
      namespace: this.namespace,
      labelSelector: `${AGENT_SELECTOR},${LABEL_RUN_ID}=${labelValueFor(runId)}`,
    });
    return list.items;
  }

  private async deleteJob(name: string): Promise<void> {
    try {
      await this.batch.deleteNamespacedJob({
        name,
        namespace: this.namespace,
        propagationPolicy: "Background",
      });
    } catch (error) {
      if (httpStatusOf(error) !== 404)
        throw new Error(`deleting Job ${name} failed: ${describeError(error)}`, { cause: error });
    }
  }

  /** Creates the owned Secret; an existing one is kept only if it is owned by this Job and holds this token. */
  private async ensureSecret(secret: V1Secret, jobUid: string): Promise<void> {
    const name = secret.metadata?.name ?? "";
    try {
      await this.core.createNamespacedSecret({ namespace: this.namespace, body: secret });
      return;
    } catch (error) {
      if (httpStatusOf(error) !== 409) throw error;
    }
    const existing = await this.core.readNamespacedSecret({ name, namespace: this.namespace });
    const owned = existing.metadata?.ownerReferences?.some((o) => o.uid === jobUid) ?? false;
    const sameToken = existing.data?.[RUN_TOKEN_KEY] === secret.data?.[RUN_TOKEN_KEY];
    if (owned && sameToken) return;
    // A leftover from an older Job of the same name, or a token from an earlier launch attempt:
    // the Secret is immutable, so replace it.
    const uid = existing.metadata?.uid;
    await this.core.deleteNamespacedSecret({
      name,
      namespace: this.namespace,
      ...(uid ? { body: { preconditions: { uid } } } : {}),
    });
    await this.core.createNamespacedSecret({ namespace: this.namespace, body: secret });
  }

  private async withLogTail(status: ExecutionStatus, pods: readonly V1Pod[]): Promise<ExecutionStatus> {
    if (status.state !== "failed") return status;
    const pod = latestPod(pods);
    const podName = pod?.metadata?.name;
    if (!podName) return status;
    const started = pod.status?.containerStatuses?.some(
      (c) => c.state?.terminated || c.state?.running || c.lastState?.terminated,
    );
    if (!started) return status;
    try {
      const log = await this.core.readNamespacedPodLog({
        name: podName,
        namespace: this.namespace,
        container: AGENT_CONTAINER,
        tailLines: this.options.logTailLines,
        limitBytes: 64 * 1024,
      });
      const tail = this.redact(String(log)).trimEnd();
      return tail === "" ? status : { ...status, logTail: tail };
    } catch (error) {
      this.logger.debug({ pod: podName, err: describeError(error) }, "pod log unavailable");
      return status;
    }
  }

  private startWatching(): void {
    const selector = AGENT_SELECTOR;
    const ns = encodeURIComponent(this.namespace);
    const jobStream = new ListWatch<V1Job>(
      "jobs",
      async () => {
        const list = await this.batch.listNamespacedJob({
          namespace: this.namespace,
          labelSelector: selector,
        });
        return { items: list.items, resourceVersion: list.metadata?.resourceVersion };
      },
      `/apis/batch/v1/namespaces/${ns}/jobs`,
      this.watcher,
      selector,
      this.options,
      (items) => this.resetJobs(items),
      (type, job) => this.onJobEvent(type, job),
      this.logger,
    );
    const podStream = new ListWatch<V1Pod>(
      "pods",
      async () => {
        const list = await this.core.listNamespacedPod({
          namespace: this.namespace,
          labelSelector: selector,
        });
        return { items: list.items, resourceVersion: list.metadata?.resourceVersion };
      },
      `/api/v1/namespaces/${ns}/pods`,
      this.watcher,
      selector,
      this.options,
      (items) => this.resetPods(items),
      (type, pod) => this.onPodEvent(type, pod),
      this.logger,
    );
    this.streams = [jobStream as ListWatch<V1Job | V1Pod>, podStream as ListWatch<V1Job | V1Pod>];
    for (const stream of this.streams) stream.start();
    this.reconcileTimer = setInterval(() => {
      for (const stream of this.streams) stream.relist();
    }, this.options.reconcileIntervalMs);
    this.reconcileTimer.unref();
    // Grace periods (unschedulable, start failures) expire without any event: re-evaluate pending runs.
    this.pendingTimer = setInterval(() => this.reevaluatePending(), 5_000);
    this.pendingTimer.unref();
  }

  private stopWatching(): void {
    for (const stream of this.streams) stream.stop();
    this.streams = [];
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    if (this.pendingTimer) clearInterval(this.pendingTimer);
    this.reconcileTimer = undefined;
    this.pendingTimer = undefined;
    this.jobs.clear();
    this.pods.clear();
    this.lastEmitted.clear();
    this.ids.clear();
  }

  private runIdOf(object: { metadata?: Metadata } | undefined): string | undefined {
    return object?.metadata?.labels?.[LABEL_RUN_ID];
  }

  private resetJobs(items: V1Job[]): void {
    const before = new Set(this.jobs.keys());
    this.jobs.clear();
    for (const job of items) {
      const runId = this.runIdOf(job);
      if (runId) this.jobs.set(runId, job);
    }
    for (const runId of new Set([...before, ...this.jobs.keys()])) this.evaluate(runId);
  }

  private resetPods(items: V1Pod[]): void {
    const touched = new Set<string>();
    for (const pod of this.pods.values()) {
      const runId = this.runIdOf(pod);
      if (runId) touched.add(runId);
    }
    this.pods.clear();
    for (const pod of items) {
      const name = pod.metadata?.name;
      const runId = this.runIdOf(pod);
      if (!name || !runId) continue;
      this.pods.set(name, pod);
      touched.add(runId);
    }
    for (const runId of touched) this.evaluate(runId);
  }

  private onJobEvent(type: "ADDED" | "MODIFIED" | "DELETED", job: V1Job): void {
    const runId = this.runIdOf(job);
    if (!runId) return;
    if (type === "DELETED") this.jobs.delete(runId);
    else this.jobs.set(runId, job);
    this.evaluate(runId);
  }

  private onPodEvent(type: "ADDED" | "MODIFIED" | "DELETED", pod: V1Pod): void {
    const name = pod.metadata?.name;
    const runId = this.runIdOf(pod);
    if (!name || !runId) return;
    if (type === "DELETED") this.pods.delete(name);
    else this.pods.set(name, pod);
    this.evaluate(runId);
  }

  private reevaluatePending(): void {
    for (const runId of this.jobs.keys()) {
      if (this.lastEmitted.get(runId)?.startsWith('{"state":"pending"')) this.evaluate(runId);
    }
  }

  /** Recomputes a run's status from the cache and tells subscribers when it changed. */
  private evaluate(runId: string): void {
    const job = this.jobs.get(runId);
    const pods = [...this.pods.values()].filter((p) => this.runIdOf(p) === runId);
    const status = this.diagnose(job, pods);
    const key = JSON.stringify(status);
    const previous = this.lastEmitted.get(runId);
    if (previous === key) return;
    // A run that never had a Job in this watch is unknown, not "gone".
    if (status.state === "gone" && previous === undefined) return;
    // A final state is not downgraded by a stale event from before it (e.g. a late pod update).
    if (previous !== undefined && status.state !== "gone" && isFinal(JSON.parse(previous) as ExecutionStatus))
      return;
    this.lastEmitted.set(runId, key);
    // Remember the exact ids while the Job exists: a "gone" report comes after it is deleted.
    const known = this.ids.get(runId);
    const ids = job || pods[0] ? idsOf(job ?? pods[0]) : undefined;
    const taskId = ids?.taskId ?? known?.taskId ?? "";
    const reportedRunId = ids?.runId ?? known?.runId ?? runId;
    this.ids.set(runId, { runId: reportedRunId, taskId });
    const chain = (this.emitChains.get(runId) ?? Promise.resolve()).then(async () => {
      let final = status;
      let finalPods: readonly V1Pod[] = pods;
      if (job && (status.state === "failed" || status.state === "succeeded")) {
        // Job and pod watches are separate streams: the Job may say "failed" before the pod's
        // termination (OOMKilled, exit code) reached the cache. Read the pods once more.
        try {
          finalPods = await this.podsOf(runId);
          final = this.diagnose(job, finalPods);
        } catch (error) {
          this.logger.debug(
            { runId, err: describeError(error) },
            "re-reading pods failed; using the watch cache",
          );
        }
      }
      const full = await this.withLogTail(final, finalPods);
      if (this.closed) return;
      for (const subscriber of [...this.subscribers]) {
        try {
          subscriber({ runId: reportedRunId, taskId, status: full });
        } catch (error) {
          this.logger.error({ runId, err: describeError(error) }, "executor status subscriber threw");
        }
      }
    });
    this.emitChains.set(runId, chain);
    void chain.finally(() => {
      if (this.emitChains.get(runId) === chain) this.emitChains.delete(runId);
      if (status.state === "gone") {
        this.lastEmitted.delete(runId);
        this.ids.delete(runId);
      }
    });
  }
}

/**
 * Builds the executor from `Config.kubernetes` (kubeconfig path from KUBECONFIG, else in-cluster).
 * The agent image is not an option here: each launch names its own (policy `repos.<r>.image` or
 * BATON_AGENT_IMAGE).
 */
export function createKubernetesExecutor(
  config: { namespace: string; kubeconfig?: string },
  options: Omit<KubernetesExecutorOptions, "kubeConfig" | "namespace"> = {},
): KubernetesExecutor {
  return new KubernetesExecutor({
    ...options,
    kubeConfig: loadKubeConfig(config.kubeconfig ? { kubeconfig: config.kubeconfig } : {}),
    namespace: config.namespace,
  });
}
