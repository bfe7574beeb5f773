// A Kubernetes API server emulator for tests: a real HTTP server speaking the REST API that Baton's
// client uses (batch/v1 Jobs, core/v1 Pods and Secrets, pod logs, watch streams, SelfSubjectAccessReview)
// plus a simulated job controller and kubelet that run each container's command as a REAL process.
// Faults: OOM kills, dropped watches, 410 Gone, image pull errors, unschedulable pods, RBAC denials.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { stringify as toYaml } from "yaml";
import { JsonPatchError, isValidSelector, jsonPatch, matchesSelector, mergePatch } from "./patch.js";

export type Resource = "jobs" | "pods" | "secrets";

/** A stored object, as JSON (the shape the real API server returns). */
export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    generateName?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    deletionTimestamp?: string;
    [key: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  data?: Record<string, string>;
  [key: string]: unknown;
}

interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export type KubernetesFault =
  /** Kill the job's container as the kernel's OOM killer would (now, or as soon as it starts). */
  | { type: "oomKill"; job: string }
  /** Close every open watch connection (clients must reconnect). */
  | { type: "dropWatches" }
  /** The next watch that names a resourceVersion gets 410 Gone (an ERROR event with code 410). */
  | { type: "goneOnNextWatch" }
  /** Forget the event history: every watch from an older resourceVersion gets 410 Gone. */
  | { type: "compactHistory" }
  /** Pulling this image fails (ErrImagePull, then ImagePullBackOff). */
  | { type: "imagePullError"; image: string }
  /** New pods stay Pending with PodScheduled=False/Unschedulable until `schedulable`. */
  | { type: "unschedulable"; message?: string }
  | { type: "schedulable" }
  /** Watch requests answer 503 until `acceptWatches` (clients back off; events pile up meanwhile). */
  | { type: "refuseWatches" }
  | { type: "acceptWatches" }
  /** SelfSubjectAccessReview answers "denied" for this verb on this resource. */
  | { type: "deny"; verb: string; resource: string; subresource?: string };

export interface KubernetesEmulatorOptions {
  /** What `["baton", "agent"]` runs; default `[node, <repo>/bin/baton.js, "agent"]`. Other commands run as given. */
  agentCommand?: string[];
  /** Extra environment for every container process (besides PATH and the pod's env). */
  extraEnv?: Record<string, string>;
  /** Bearer token the server requires; random by default. */
  token?: string;
  /** Watch history retained for resuming watches. */
  historyLimit?: number;
  /** Delay before the simulated kubelet starts a scheduled pod. */
  startDelayMs?: number;
  /** Largest captured log per pod (the tail is kept). */
  logLimitBytes?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  body?: unknown;
}

export interface ContainerStart {
  pod: string;
  job?: string;
  namespace: string;
  argv: string[];
  env: Record<string, string>;
  workspace: string;
  /** ownerReferences of every Secret the container's env resolved, as they were when it started. */
  secretOwners: Record<string, OwnerReference[]>;
}

export interface KubernetesEmulator {
  url: string;
  token: string;
  /** A KubeConfig for @kubernetes/client-node pointing at this server. */
  kubeconfig(): KubeConfig;
  /** A kubeconfig YAML file (for KUBECONFIG). */
  kubeconfigPath: string;
  jobs(namespace?: string): StoredObject[];
  pods(namespace?: string): StoredObject[];
  secrets(namespace?: string): StoredObject[];
  podLog(namespace: string, pod: string): string;
  requests(): RecordedRequest[];
  containerStarts(): ContainerStart[];
  openWatches(): number;
  inject(fault: KubernetesFault): void;
  close(): Promise<void>;
}

const REPO_ROOT = resolvePath(fileURLToPath(new URL("../../..", import.meta.url)));

const GROUPS: Record<Resource, { apiVersion: string; kind: string; listKind: string; group: string }> = {
  jobs: { apiVersion: "batch/v1", kind: "Job", listKind: "JobList", group: "batch" },
  pods: { apiVersion: "v1", kind: "Pod", listKind: "PodList", group: "" },
  secrets: { apiVersion: "v1", kind: "Secret", listKind: "SecretList", group: "" },
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

interface Watcher {
  resource: Resource;
  namespace: string | undefined;
  selector: string | null;
  res: ServerResponse;
  timer?: NodeJS.Timeout;
}

interface HistoryEvent {
  rv: number;
  resource: Resource;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: StoredObject;
}

interface RunningContainer {
  child: ChildProcess;
  oom: boolean;
  silenced: boolean;
  exited: Promise<void>;
}

const SIGNALS: Record<string, number> = {
  SIGKILL: 9,
  SIGTERM: 15,
  SIGINT: 2,
  SIGHUP: 1,
  SIGABRT: 6,
  SIGSEGV: 11,
};

export async function startKubernetesEmulator(
  options: KubernetesEmulatorOptions = {},
): Promise<KubernetesEmulator> {
  const token = options.token ?? randomBytes(16).toString("hex");
  const historyLimit = options.historyLimit ?? 10_000;
  const startDelayMs = options.startDelayMs ?? 10;
  const logLimit = options.logLimitBytes ?? 1024 * 1024;
  const agentCommand = options.agentCommand ?? [
    process.execPath,
    join(REPO_ROOT, "bin", "baton.js"),
    "agent",
  ];
  const root = mkdtempSync(join(tmpdir(), "baton-k8s-emulator-"));

  const store: Record<Resource, Map<string, StoredObject>> = {
    jobs: new Map(),
    pods: new Map(),
    secrets: new Map(),
  };
  let revision = 1000;
  let history: HistoryEvent[] = [];
  let oldestRetained = revision;
  const watchers = new Set<Watcher>();
  const recorded: RecordedRequest[] = [];
  const starts: ContainerStart[] = [];
  const logs = new Map<string, string>();
  const containers = new Map<string, RunningContainer>();
  const timers = new Set<NodeJS.Timeout>();
  const pendingOom = new Set<string>();
  const badImages = new Set<string>();
  const denied: { verb: string; resource: string; subresource?: string }[] = [];
  let unschedulable: string | undefined;
  let goneOnNextWatch = false;
  let refuseWatches = false;
  let closing = false;

  const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;
  const now = () => new Date().toISOString();
  const clone = <T>(value: T): T => structuredClone(value);

  function later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!closing) fn();
    }, ms);
    timers.add(timer);
  }

  // --- store and watch events ---------------------------------------------------------------

  function record(resource: Resource, type: HistoryEvent["type"], object: StoredObject): void {
    const event: HistoryEvent = {
      rv: Number(object.metadata.resourceVersion),
      resource,
      type,
      object: clone(object),
    };
    history.push(event);
    if (history.length > historyLimit) {
      const dropped = history.splice(0, history.length - historyLimit);
      oldestRetained = (dropped[dropped.length - 1]?.rv ?? oldestRetained) + 1;
    }
    for (const watcher of watchers) {
      if (watcher.resource === resource && matchesWatcher(watcher, event.object))
        send(watcher, event.type, event.object);
    }
  }

  function matchesWatcher(watcher: Watcher, object: StoredObject): boolean {
    if (watcher.namespace !== undefined && object.metadata.namespace !== watcher.namespace) return false;
    return matchesSelector(object.metadata.labels, watcher.selector);
  }

  function send(watcher: Watcher, type: string, object: unknown): void {
    if (!watcher.res.writableEnded) watcher.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  function endWatch(watcher: Watcher): void {
    if (watcher.timer) clearTimeout(watcher.timer);
    watchers.delete(watcher);
    if (!watcher.res.writableEnded) watcher.res.end();
  }

  function put(resource: Resource, object: StoredObject, type: HistoryEvent["type"]): StoredObject {
    revision += 1;
    object.metadata.resourceVersion = String(revision);
    store[resource].set(keyOf(object.metadata.namespace, object.metadata.name), object);
    record(resource, type, object);
    return object;
  }

  function get(resource: Resource, namespace: string, name: string): StoredObject | undefined {
    return store[resource].get(keyOf(namespace, name));
  }

  function update(
    resource: Resource,
    namespace: string,
    name: string,
    mutate: (o: StoredObject) => void,
  ): StoredObject | undefined {
    const current = get(resource, namespace, name);
    if (!current) return undefined;
    const next = clone(current);
    mutate(next);
    return put(resource, next, "MODIFIED");
  }

  function remove(
    resource: Resource,
    namespace: string,
    name: string,
    propagation: string,
  ): StoredObject | undefined {
    const current = get(resource, namespace, name);
    if (!current) return undefined;
    store[resource].delete(keyOf(namespace, name));
    revision += 1;
    const gone = clone(current);
    gone.metadata.resourceVersion = String(revision);
    gone.metadata.deletionTimestamp = now();
    record(resource, "DELETED", gone);
    if (resource === "pods") stopContainer(namespace, name);
    collectGarbage(current.metadata.uid, propagation);
    return gone;
  }

  /** The garbage collector: dependents of a deleted owner go too (Background/Foreground) or are orphaned. */
  function collectGarbage(uid: string, propagation: string): void {
    const dependents: [Resource, StoredObject][] = [];
    for (const resource of Object.keys(store) as Resource[]) {
      for (const object of store[resource].values()) {
        if (object.metadata.ownerReferences?.some((o) => o.uid === uid)) dependents.push([resource, object]);
      }
    }
    if (dependents.length === 0) return;
    if (propagation === "Orphan") {
      for (const [resource, object] of dependents) {
        update(resource, object.metadata.namespace, object.metadata.name, (o) => {
          o.metadata.ownerReferences = o.metadata.ownerReferences?.filter((r) => r.uid !== uid);
          if (o.metadata.ownerReferences?.length === 0) delete o.metadata.ownerReferences;
        });
      }
      return;
    }
    // Like the real collector, this happens shortly after the owner is gone, not in the same request.
    later(5, () => {
      for (const [resource, object] of dependents)
        remove(resource, object.metadata.namespace, object.metadata.name, "Background");
    });
  }

  // --- validation ------------------------------------------------------------------------------

  function validate(resource: Resource, object: StoredObject): void {
    const problems: string[] = [];
    const name = object.metadata.name;
    if (resource === "jobs") {
      if (!DNS_LABEL.test(name) || name.length > 63)
        problems.push(
          `metadata.name: Invalid value: "${name}": must be a DNS-1123 label of at most 63 characters`,
        );
      const template = (object.spec?.["template"] ?? {}) as {
        spec?: { containers?: unknown[]; restartPolicy?: string };
      };
      if (!template.spec?.containers?.length) problems.push("spec.template.spec.containers: Required value");
      const rp = template.spec?.restartPolicy;
      if (rp !== "Never" && rp !== "OnFailure")
        problems.push(`spec.template.spec.restartPolicy: Unsupported value: "${rp ?? ""}"`);
    } else if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
      problems.push(`metadata.name: Invalid value: "${name}"`);
    }
    for (const [key, value] of Object.entries(object.metadata.labels ?? {})) {
      if (
        typeof value !== "string" ||
        value.length > 63 ||
        !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value)
      ) {
        problems.push(`metadata.labels: Invalid value: "${String(value)}" for ${key}`);
      }
    }
    if (resource === "secrets") {
      for (const [key, value] of Object.entries(object.data ?? {})) {
        if (typeof value !== "string" || Buffer.from(value, "base64").toString("base64") !== value)
          problems.push(`data[${key}]: not base64`);
      }
    }
    if (problems.length > 0) {
      throw new HttpError(
        422,
        "Invalid",
        `${GROUPS[resource].kind} "${name}" is invalid: ${problems.join(", ")}`,
        {
          name,
          kind: GROUPS[resource].kind,
        },
      );
    }
  }

  // --- job controller --------------------------------------------------------------------------

  function podsOfJob(job: StoredObject): StoredObject[] {
    return [...store.pods.values()].filter((p) =>
      p.metadata.ownerReferences?.some((o) => o.uid === job.metadata.uid),
    );
  }

  function jobFinished(job: StoredObject): boolean {
    const conditions = (job.status?.["conditions"] ?? []) as { type: string; status: string }[];
    return conditions.some((c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True");
  }

  function syncJob(namespace: string, name: string): void {
    const job = get("jobs", namespace, name);
    if (!job || jobFinished(job) || job.spec?.["suspend"] === true || job.metadata.deletionTimestamp) return;
    const pods = podsOfJob(job);
    const active = pods.filter(
      (p) => p.status?.["phase"] !== "Succeeded" && p.status?.["phase"] !== "Failed",
    );
    const succeeded = pods.filter((p) => p.status?.["phase"] === "Succeeded").length;
    const failedPods = pods.filter((p) => p.status?.["phase"] === "Failed").length;
    const failed = Math.max(failedPods, Number(job.status?.["failed"] ?? 0));
    const backoffLimit = Number(job.spec?.["backoffLimit"] ?? 6);
    const completions = Number(job.spec?.["completions"] ?? 1);
    const ready = active.filter((p) => p.status?.["phase"] === "Running").length;

    if (!job.status?.["startTime"]) {
      update("jobs", namespace, name, (j) => {
        j.status = { ...j.status, startTime: now() };
      });
      const deadline = job.spec?.["activeDeadlineSeconds"];
      if (typeof deadline === "number")
        later(deadline * 1000, () => deadlineExceeded(namespace, name, job.metadata.uid));
    }

    let conditions: Record<string, unknown>[] | undefined;
    const at = now();
    if (succeeded >= completions) {
      conditions = [
        {
          type: "SuccessCriteriaMet",
          status: "True",
          reason: "CompletionsReached",
          message: "Reached expected number of succeeded pods",
          lastProbeTime: at,
          lastTransitionTime: at,
        },
        {
          type: "Complete",
          status: "True",
          reason: "CompletionsReached",
          message: "Reached expected number of succeeded pods",
          lastProbeTime: at,
          lastTransitionTime: at,
        },
      ];
    } else if (failed > backoffLimit) {
      conditions = [
        {
          type: "FailureTarget",
          status: "True",
          reason: "BackoffLimitExceeded",
          message: "Job has reached the specified backoff limit",
          lastProbeTime: at,
          lastTransitionTime: at,
        },
        {
          type: "Failed",
          status: "True",
          reason: "BackoffLimitExceeded",
          message: "Job has reached the specified backoff limit",
          lastProbeTime: at,
          lastTransitionTime: at,
        },
      ];
    }
    const latest = get("jobs", namespace, name) ?? job;
    const status: Record<string, unknown> = {
      ...latest.status,
      active: active.length,
      ready,
      ...(succeeded ? { succeeded } : {}),
      ...(failed ? { failed } : {}),
      ...(conditions ? { conditions } : {}),
      ...(conditions?.[1]?.["type"] === "Complete" ? { completionTime: at } : {}),
    };
    if (status["active"] === 0) delete status["active"];
    // Only real changes produce a MODIFIED event.
    if (JSON.stringify(status) !== JSON.stringify(latest.status)) {
      update("jobs", namespace, name, (j) => {
        j.status = status;
      });
    }
    if (conditions) {
      const ttl = job.spec?.["ttlSecondsAfterFinished"];
      if (typeof ttl === "number") later(ttl * 1000, () => remove("jobs", namespace, name, "Background"));
      return;
    }
    if (active.length === 0) createPod(job);
  }

  function deadlineExceeded(namespace: string, name: string, uid: string): void {
    const job = get("jobs", namespace, name);
    if (!job || job.metadata.uid !== uid || jobFinished(job)) return;
    const active = podsOfJob(job).filter(
      (p) => p.status?.["phase"] !== "Succeeded" && p.status?.["phase"] !== "Failed",
    );
    const at = now();
    const message = "Job was active longer than specified deadline";
    update("jobs", namespace, name, (j) => {
      j.status = {
        ...j.status,
        failed: Number(j.status?.["failed"] ?? 0) + active.length,
        ready: 0,
        conditions: [
          {
            type: "FailureTarget",
            status: "True",
            reason: "DeadlineExceeded",
            message,
            lastProbeTime: at,
            lastTransitionTime: at,
          },
          {
            type: "Failed",
            status: "True",
            reason: "DeadlineExceeded",
            message,
            lastProbeTime: at,
            lastTransitionTime: at,
          },
        ],
      };
      delete j.status["active"];
    });
    // The job controller deletes the Job's active pods.
    for (const pod of active) {
      const running = containers.get(keyOf(namespace, pod.metadata.name));
      if (running) running.silenced = true;
      remove("pods", namespace, pod.metadata.name, "Background");
    }
    const ttl = job.spec?.["ttlSecondsAfterFinished"];
    if (typeof ttl === "number") later(ttl * 1000, () => remove("jobs", namespace, name, "Background"));
  }

  function createPod(job: StoredObject): void {
    const template = clone(
      (job.spec?.["template"] ?? {}) as {
        metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
        spec?: Record<string, unknown>;
      },
    );
    const name = `${job.metadata.name}-${randomBytes(3).toString("hex").slice(0, 5)}`;
    const pod: StoredObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: job.metadata.namespace,
        uid: randomUUID(),
        resourceVersion: "0",
        creationTimestamp: now(),
        generateName: `${job.metadata.name}-`,
        labels: {
          ...(template.metadata?.labels ?? {}),
          "batch.kubernetes.io/controller-uid": job.metadata.uid,
          "batch.kubernetes.io/job-name": job.metadata.name,
          "controller-uid": job.metadata.uid,
          "job-name": job.metadata.name,
        },
        ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
        ownerReferences: [
          {
            apiVersion: "batch/v1",
            kind: "Job",
            name: job.metadata.name,
            uid: job.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: template.spec ?? {},
      status: { phase: "Pending", qosClass: "Burstable" },
    };
    put("pods", pod, "ADDED");
    later(startDelayMs, () => kubelet(pod.metadata.namespace, name));
  }

  function onPodChanged(pod: StoredObject): void {
    const owner = pod.metadata.ownerReferences?.find((o) => o.kind === "Job" && o.controller);
    if (owner) syncJob(pod.metadata.namespace, owner.name);
  }

  // --- kubelet ---------------------------------------------------------------------------------

  interface ContainerSpec {
    name: string;
    image?: string;
    command?: string[];
    args?: string[];
    workingDir?: string;
    env?: {
      name: string;
      value?: string;
      valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
    }[];
    volumeMounts?: { name: string; mountPath: string }[];
  }

  function setPodStatus(
    namespace: string,
    name: string,
    status: Record<string, unknown>,
  ): StoredObject | undefined {
    const pod = update("pods", namespace, name, (p) => {
      p.status = { ...p.status, ...status };
    });
    if (pod) onPodChanged(pod);
    return pod;
  }

  function waiting(container: ContainerSpec, reason: string, message: string) {
    return [
      {
        name: container.name,
        image: container.image ?? "",
        imageID: "",
        ready: false,
        restartCount: 0,
        started: false,
        state: { waiting: { reason, message } },
      },
    ];
  }

  function kubelet(namespace: string, name: string): void {
    const pod = get("pods", namespace, name);
    if (!pod) return;
    const spec = (pod.spec ?? {}) as { containers?: ContainerSpec[] };
    const container = spec.containers?.[0];
    if (!container) return;
    if (unschedulable !== undefined) {
      const at = now();
      setPodStatus(namespace, name, {
        phase: "Pending",
        conditions: [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: unschedulable,
            lastProbeTime: null,
            lastTransitionTime: at,
          },
        ],
      });
      return;
    }
    const at = now();
    const scheduled = [{ type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: at }];
    update("pods", namespace, name, (p) => {
      p.spec = { ...p.spec, nodeName: "emulated-node" };
    });
    if (container.image && badImages.has(container.image)) {
      setPodStatus(namespace, name, {
        phase: "Pending",
        startTime: at,
        hostIP: "127.0.0.1",
        conditions: scheduled,
        containerStatuses: waiting(
          container,
          "ErrImagePull",
          `rpc error: code = NotFound desc = failed to pull and unpack image "${container.image}": not found`,
        ),
      });
      later(20, () => {
        if (!get("pods", namespace, name)) return;
        setPodStatus(namespace, name, {
          containerStatuses: waiting(
            container,
            "ImagePullBackOff",
            `Back-off pulling image "${container.image}"`,
          ),
        });
      });
      return;
    }
    startContainer(namespace, name, container, scheduled, at);
  }

  function resolveEnv(
    namespace: string,
    container: ContainerSpec,
  ): { env: Record<string, string>; owners: Record<string, OwnerReference[]> } | { error: string } {
    const env: Record<string, string> = {};
    const owners: Record<string, OwnerReference[]> = {};
    for (const variable of container.env ?? []) {
      if (variable.value !== undefined) {
        env[variable.name] = variable.value;
        continue;
      }
      const ref = variable.valueFrom?.secretKeyRef;
      if (!ref) return { error: `unsupported valueFrom for ${variable.name}` };
      const secret = get("secrets", namespace, ref.name);
      if (!secret) {
        if (ref.optional) continue;
        return { error: `secret "${ref.name}" not found` };
      }
      const value = secret.data?.[ref.key];
      if (value === undefined) {
        if (ref.optional) continue;
        return { error: `couldn't find key ${ref.key} in Secret ${namespace}/${ref.name}` };
      }
      env[variable.name] = Buffer.from(value, "base64").toString("utf8");
      owners[ref.name] = clone(secret.metadata.ownerReferences ?? []);
    }
    return { env, owners };
  }

  function appendLog(key: string, chunk: Buffer): void {
    const next = (logs.get(key) ?? "") + chunk.toString("utf8");
    logs.set(key, next.length > logLimit ? next.slice(next.length - logLimit) : next);
  }

  function startContainer(
    namespace: string,
    name: string,
    container: ContainerSpec,
    scheduled: unknown[],
    startTime: string,
  ): void {
    const pod = get("pods", namespace, name);
    if (!pod) return;
    const resolved = resolveEnv(namespace, container);
    if ("error" in resolved) {
      setPodStatus(namespace, name, {
        phase: "Pending",
        startTime,
        hostIP: "127.0.0.1",
        conditions: scheduled,
        containerStatuses: waiting(container, "CreateContainerConfigError", resolved.error),
      });
      // The kubelet keeps retrying (the Secret may appear later).
      later(200, () => startContainer(namespace, name, container, scheduled, startTime));
      return;
    }
    // Every volume mount becomes a folder of the pod's sandbox; paths in env and workingDir follow it.
    const sandbox = join(root, `${namespace}-${name}`);
    mkdirSync(sandbox, { recursive: true });
    const mounts = (container.volumeMounts ?? []).map((m) => {
      const dir = join(sandbox, m.name);
      mkdirSync(dir, { recursive: true });
      return { path: m.mountPath.replace(/\/+$/, ""), dir };
    });
    const mapPath = (value: string): string => {
      for (const m of mounts) {
        if (value === m.path) return m.dir;
        if (value.startsWith(`${m.path}/`)) return join(m.dir, value.slice(m.path.length + 1));
      }
      return value;
    };
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(resolved.env)) env[k] = mapPath(v);
    const tmpMount = mounts.find((m) => m.path === "/tmp");
    const processEnv: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      ...(tmpMount ? { TMPDIR: tmpMount.dir } : {}),
      ...(options.extraEnv ?? {}),
      ...env,
    };
    const declared = [...(container.command ?? []), ...(container.args ?? [])];
    const argv =
      container.command?.length === 2 && container.command[0] === "baton" && container.command[1] === "agent"
        ? [...agentCommand, ...(container.args ?? [])]
        : declared;
    const cwd = container.workingDir ? mapPath(container.workingDir) : sandbox;
    mkdirSync(cwd, { recursive: true });
    const jobName = pod.metadata.labels?.["job-name"];
    starts.push({
      pod: name,
      ...(jobName ? { job: jobName } : {}),
      namespace,
      argv,
      env: processEnv,
      workspace: cwd,
      secretOwners: resolved.owners,
    });

    const key = keyOf(namespace, name);
    const [file, ...args] = argv;
    if (!file) {
      setPodStatus(namespace, name, {
        phase: "Pending",
        conditions: scheduled,
        containerStatuses: waiting(container, "CreateContainerError", "no command specified"),
      });
      return;
    }
    const child = spawn(file, args, {
      cwd,
      env: processEnv,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let resolveExit: () => void = () => undefined;
    const running: RunningContainer = {
      child,
      oom: false,
      silenced: false,
      exited: new Promise((r) => (resolveExit = r)),
    };
    containers.set(key, running);
    child.stdout?.on("data", (chunk: Buffer) => appendLog(key, chunk));
    child.stderr?.on("data", (chunk: Buffer) => appendLog(key, chunk));
    const startedAt = now();
    child.on("error", (error) => {
      appendLog(key, Buffer.from(`exec failed: ${error.message}\n`));
    });
    child.on("close", (code, signal) => {
      containers.delete(key);
      resolveExit();
      if (closing || running.silenced || !get("pods", namespace, name)) return;
      const exitCode = running.oom ? 137 : (code ?? (signal ? 128 + (SIGNALS[signal] ?? 9) : 1));
      const reason = running.oom ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error";
      const finishedAt = now();
      setPodStatus(namespace, name, {
        phase: exitCode === 0 ? "Succeeded" : "Failed",
        conditions: [
          ...scheduled,
          {
            type: "Ready",
            status: "False",
            reason: "PodCompleted",
            lastProbeTime: null,
            lastTransitionTime: finishedAt,
          },
        ],
        containerStatuses: [
          {
            name: container.name,
            image: container.image ?? "",
            imageID: `emulated://${container.image ?? ""}`,
            containerID: `emulated://${child.pid ?? 0}`,
            ready: false,
            restartCount: 0,
            started: false,
            state: {
              terminated: {
                exitCode,
                reason,
                startedAt,
                finishedAt,
                containerID: `emulated://${child.pid ?? 0}`,
              },
            },
          },
        ],
      });
    });
    setPodStatus(namespace, name, {
      phase: "Running",
      startTime,
      hostIP: "127.0.0.1",
      podIP: "127.0.0.1",
      conditions: [
        ...scheduled,
        { type: "Ready", status: "True", lastProbeTime: null, lastTransitionTime: startedAt },
      ],
      containerStatuses: [
        {
          name: container.name,
          image: container.image ?? "",
          imageID: `emulated://${container.image ?? ""}`,
          containerID: `emulated://${child.pid ?? 0}`,
          ready: true,
          restartCount: 0,
          started: true,
          state: { running: { startedAt } },
        },
      ],
    });
    if (jobName && pendingOom.delete(keyOf(namespace, jobName))) oomKill(key);
  }

  function killTree(child: ChildProcess, signal: NodeJS.Signals): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
  }

  function oomKill(key: string): boolean {
    const running = containers.get(key);
    if (!running) return false;
    running.oom = true;
    killTree(running.child, "SIGKILL");
    return true;
  }

  function stopContainer(namespace: string, name: string): void {
    const running = containers.get(keyOf(namespace, name));
    if (running) {
      running.silenced = true;
      killTree(running.child, "SIGKILL");
    }
  }

  // --- HTTP ------------------------------------------------------------------------------------

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  function json(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  function parseJson(text: string): unknown {
    try {
      return text === "" ? undefined : (JSON.parse(text) as unknown);
    } catch {
      throw new HttpError(400, "BadRequest", "the request body is not valid JSON");
    }
  }

  interface Route {
    resource?: Resource;
    namespace?: string;
    name?: string;
    sub?: string;
    special?: "version" | "ssar";
  }

  function route(pathname: string): Route | undefined {
    if (pathname === "/version") return { special: "version" };
    if (pathname === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") return { special: "ssar" };
    const parts = pathname.split("/").filter(Boolean).map(decodeURIComponent);
    let rest: string[];
    let group: "core" | "batch";
    if (parts[0] === "api" && parts[1] === "v1") {
      group = "core";
      rest = parts.slice(2);
    } else if (parts[0] === "apis" && parts[1] === "batch" && parts[2] === "v1") {
      group = "batch";
      rest = parts.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = rest[0];
    const ok = group === "batch" ? resource === "jobs" : resource === "pods" || resource === "secrets";
    if (!ok || rest.length > 3) return undefined;
    return {
      resource: resource as Resource,
      ...(namespace ? { namespace } : {}),
      ...(rest[1] ? { name: rest[1] } : {}),
      ...(rest[2] ? { sub: rest[2] } : {}),
    };
  }

  function list(resource: Resource, namespace: string | undefined, selector: string | null): StoredObject[] {
    return [...store[resource].values()]
      .filter(
        (o) =>
          (namespace === undefined || o.metadata.namespace === namespace) &&
          matchesSelector(o.metadata.labels, selector),
      )
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
      .map((o) => clone(o));
  }

  function startWatch(
    res: ServerResponse,
    resource: Resource,
    namespace: string | undefined,
    query: URLSearchParams,
  ): void {
    const selector = query.get("labelSelector");
    const rvParam = query.get("resourceVersion");
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    // Clients consider the watch open once headers arrive, even before the first event.
    res.flushHeaders();
    const watcher: Watcher = { resource, namespace, selector, res };
    const rv = rvParam && rvParam !== "0" ? Number(rvParam) : undefined;
    if (rv !== undefined && (goneOnNextWatch || Number.isNaN(rv) || rv < oldestRetained - 1)) {
      goneOnNextWatch = false;
      send(
        watcher,
        "ERROR",
        statusBody(410, "Expired", `too old resource version: ${rvParam} (${revision})`),
      );
      res.end();
      return;
    }
    if (rv === undefined) {
      for (const object of list(resource, namespace, selector)) send(watcher, "ADDED", object);
    } else {
      for (const event of history) {
        if (event.rv > rv && event.resource === resource && matchesWatcher(watcher, event.object))
          send(watcher, event.type, event.object);
      }
    }
    watchers.add(watcher);
    const timeoutSeconds = Number(query.get("timeoutSeconds") ?? "0");
    if (timeoutSeconds > 0) watcher.timer = setTimeout(() => endWatch(watcher), timeoutSeconds * 1000);
    res.on("close", () => endWatch(watcher));
  }

  function deleteOptions(
    query: URLSearchParams,
    body: unknown,
  ): { propagation: string | undefined; uid: string | undefined } {
    const options = (body && typeof body === "object" ? body : {}) as {
      propagationPolicy?: string;
      orphanDependents?: boolean;
      preconditions?: { uid?: string };
    };
    const orphan = query.get("orphanDependents") === "true" || options.orphanDependents === true;
    return {
      propagation:
        query.get("propagationPolicy") ?? options.propagationPolicy ?? (orphan ? "Orphan" : undefined),
      uid: options.preconditions?.uid,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://emulator");
    const method = req.method ?? "GET";
    const text = method === "GET" ? "" : await readBody(req);
    const contentType = req.headers["content-type"]?.split(";")[0]?.trim();
    const entry: RecordedRequest = {
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      ...(contentType ? { contentType } : {}),
    };
    recorded.push(entry);

    if (req.headers.authorization !== `Bearer ${token}`)
      throw new HttpError(401, "Unauthorized", "Unauthorized");
    const r = route(url.pathname);
    if (!r) throw new HttpError(404, "NotFound", "the server could not find the requested resource");
    if (r.special === "version") {
      json(res, 200, {
        major: "1",
        minor: "33",
        gitVersion: "v1.33.0-baton-emulator",
        platform: "linux/amd64",
      });
      return;
    }
    const body = parseJson(text);
    if (body !== undefined) entry.body = body;
    if (r.special === "ssar") {
      if (method !== "POST") throw new HttpError(405, "MethodNotAllowed", "only POST is supported");
      const review = body as {
        spec?: {
          resourceAttributes?: {
            verb?: string;
            resource?: string;
            subresource?: string;
            namespace?: string;
            group?: string;
          };
        };
      };
      const attributes = review.spec?.resourceAttributes ?? {};
      const deny = denied.some(
        (d) =>
          d.verb === attributes.verb &&
          d.resource === attributes.resource &&
          (d.subresource ?? "") === (attributes.subresource ?? ""),
      );
      json(res, 201, {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        metadata: { creationTimestamp: null },
        spec: review.spec ?? {},
        status: deny
          ? { allowed: false, denied: true, reason: "denied by the emulator's RBAC" }
          : { allowed: true, reason: "allowed by the emulator" },
      });
      return;
    }
    const resource = r.resource as Resource;
    const info = GROUPS[resource];
    const namespace = r.namespace;

    if (!r.name) {
      if (method === "GET") {
        const selector = url.searchParams.get("labelSelector");
        if (!isValidSelector(selector))
          throw new HttpError(400, "BadRequest", `unable to parse requirement: ${selector ?? ""}`);
        const watch = url.searchParams.get("watch");
        if (watch === "true" || watch === "1") {
          if (refuseWatches)
            throw new HttpError(503, "ServiceUnavailable", "the emulator refuses watches (injected fault)");
          startWatch(res, resource, namespace, url.searchParams);
          return;
        }
        let items = list(resource, namespace, selector);
        const limit = Number(url.searchParams.get("limit") ?? "0");
        if (limit > 0) items = items.slice(0, limit);
        json(res, 200, {
          kind: info.listKind,
          apiVersion: info.apiVersion,
          metadata: { resourceVersion: String(revision) },
          items,
        });
        return;
      }
      if (method === "POST") {
        if (!namespace) throw new HttpError(405, "MethodNotAllowed", "create needs a namespace");
        const input = body as StoredObject | undefined;
        if (!input || typeof input !== "object" || !input.metadata)
          throw new HttpError(400, "BadRequest", "the body must be an object with metadata");
        if (input.kind !== undefined && input.kind !== info.kind)
          throw new HttpError(400, "BadRequest", `kind ${input.kind} does not match ${info.kind}`);
        if (input.metadata.namespace && input.metadata.namespace !== namespace)
          throw new HttpError(
            400,
            "BadRequest",
            "the namespace of the object does not match the namespace on the request",
          );
        const name =
          input.metadata.name ??
          (input.metadata.generateName
            ? `${input.metadata.generateName}${randomBytes(3).toString("hex").slice(0, 5)}`
            : undefined);
        if (!name) throw new HttpError(422, "Invalid", "metadata.name: Required value");
        if (get(resource, namespace, name)) {
          throw new HttpError(
            409,
            "AlreadyExists",
            `${resource}${info.group ? `.${info.group}` : ""} "${name}" already exists`,
            { name, group: info.group, kind: resource },
          );
        }
        const object: StoredObject = {
          ...clone(input),
          apiVersion: info.apiVersion,
          kind: info.kind,
          metadata: {
            ...clone(input.metadata),
            name,
            namespace,
            uid: randomUUID(),
            resourceVersion: "0",
            creationTimestamp: now(),
          },
        };
        delete object.metadata.deletionTimestamp;
        if (resource === "jobs") {
          object.spec = {
            suspend: false,
            backoffLimit: 6,
            completions: 1,
            parallelism: 1,
            ...(object.spec ?? {}),
          };
          object.status = {};
        }
        validate(resource, object);
        put(resource, object, "ADDED");
        json(res, 201, object);
        if (resource === "jobs") later(0, () => syncJob(namespace, name));
        if (resource === "pods") later(startDelayMs, () => kubelet(namespace, name));
        return;
      }
      throw new HttpError(405, "MethodNotAllowed", `${method} is not supported on a collection`);
    }

    if (!namespace) throw new HttpError(404, "NotFound", "namespaced resources need a namespace");
    const name = r.name;
    const current = get(resource, namespace, name);
    const notFound = () =>
      new HttpError(404, "NotFound", `${resource}${info.group ? `.${info.group}` : ""} "${name}" not found`, {
        name,
        group: info.group,
        kind: resource,
      });

    if (r.sub === "log") {
      if (resource !== "pods" || method !== "GET")
        throw new HttpError(405, "MethodNotAllowed", "logs are read with GET on pods");
      if (!current) throw notFound();
      const statuses = (current.status?.["containerStatuses"] ?? []) as {
        state?: { running?: unknown; terminated?: unknown; waiting?: { reason?: string } };
      }[];
      const state = statuses[0]?.state;
      if (!state?.running && !state?.terminated) {
        throw new HttpError(
          400,
          "BadRequest",
          `container "agent" in pod "${name}" is waiting to start: ${state?.waiting?.reason ?? "ContainerCreating"}`,
        );
      }
      let log = logs.get(keyOf(namespace, name)) ?? "";
      const tail = url.searchParams.get("tailLines");
      if (tail !== null) {
        const lines = log.split("\n");
        const trailing = lines[lines.length - 1] === "" ? lines.pop() : undefined;
        log =
          lines.slice(Math.max(0, lines.length - Number(tail))).join("\n") + (trailing === "" ? "\n" : "");
      }
      const limitBytes = url.searchParams.get("limitBytes");
      if (limitBytes !== null) log = Buffer.from(log).subarray(0, Number(limitBytes)).toString("utf8");
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(log) });
      res.end(log);
      return;
    }
    if (r.sub !== undefined && r.sub !== "status")
      throw new HttpError(404, "NotFound", `unknown subresource ${r.sub}`);

    if (method === "GET") {
      if (!current) throw notFound();
      json(res, 200, clone(current));
      return;
    }
    if (method === "DELETE") {
      if (!current) throw notFound();
      const { propagation, uid } = deleteOptions(url.searchParams, body);
      if (uid && uid !== current.metadata.uid) {
        throw new HttpError(
          409,
          "Conflict",
          `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${current.metadata.uid}`,
          { name, kind: resource },
        );
      }
      // batch/v1 Jobs orphan their pods unless told otherwise (the API's default for this group).
      const policy = propagation ?? (resource === "jobs" ? "Orphan" : "Background");
      const gone = remove(resource, namespace, name, policy);
      if (resource === "pods") json(res, 200, gone);
      else
        json(res, 200, {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Success",
          details: { name, group: info.group, kind: resource, uid: current.metadata.uid },
        });
      return;
    }
    if (method === "PUT" || method === "PATCH") {
      if (!current) throw notFound();
      let next: StoredObject;
      if (method === "PUT") {
        const input = body as StoredObject | undefined;
        if (!input?.metadata)
          throw new HttpError(400, "BadRequest", "the body must be an object with metadata");
        if (
          input.metadata.resourceVersion &&
          input.metadata.resourceVersion !== current.metadata.resourceVersion
        ) {
          throw new HttpError(
            409,
            "Conflict",
            `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
            { name, kind: resource },
          );
        }
        next = { ...clone(input), apiVersion: info.apiVersion, kind: info.kind } as StoredObject;
      } else if (
        contentType === "application/merge-patch+json" ||
        contentType === "application/strategic-merge-patch+json"
      ) {
        next = mergePatch(current, body) as StoredObject;
      } else if (contentType === "application/json-patch+json") {
        try {
          next = jsonPatch(current, body) as StoredObject;
        } catch (error) {
          if (error instanceof JsonPatchError) throw new HttpError(422, "Invalid", error.message);
          throw error;
        }
      } else {
        throw new HttpError(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${contentType ?? "none"})`,
        );
      }
      // Identity and system fields are the server's.
      next.metadata = {
        ...next.metadata,
        name,
        namespace,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        resourceVersion: current.metadata.resourceVersion,
      };
      if (resource === "secrets" && current["immutable"] === true) {
        if (
          JSON.stringify(next.data ?? {}) !== JSON.stringify(current.data ?? {}) ||
          next["immutable"] !== true
        ) {
          throw new HttpError(
            422,
            "Invalid",
            `Secret "${name}" is invalid: data: Forbidden: field is immutable when \`immutable\` is set`,
            { name, kind: "Secret" },
          );
        }
      }
      if (
        resource === "jobs" &&
        JSON.stringify(next.spec?.["template"]) !== JSON.stringify(current.spec?.["template"])
      ) {
        throw new HttpError(
          422,
          "Invalid",
          `Job.batch "${name}" is invalid: spec.template: Invalid value: field is immutable`,
          { name, kind: "Job" },
        );
      }
      if (r.sub !== "status") next.status = current.status;
      validate(resource, next);
      const saved = put(resource, next, "MODIFIED");
      json(res, 200, saved);
      if (resource === "jobs") later(0, () => syncJob(namespace, name));
      return;
    }
    throw new HttpError(405, "MethodNotAllowed", `${method} is not supported`);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.end();
        return;
      }
      if (error instanceof HttpError)
        json(res, error.code, statusBody(error.code, error.reason, error.message, error.details));
      else
        json(
          res,
          500,
          statusBody(500, "InternalError", error instanceof Error ? error.message : String(error)),
        );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("emulator has no port");
  const url = `http://127.0.0.1:${address.port}`;

  const kubeconfigObject = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "emulator", cluster: { server: url, "insecure-skip-tls-verify": true } }],
    users: [{ name: "baton", user: { token } }],
    contexts: [{ name: "emulator", context: { cluster: "emulator", user: "baton", namespace: "default" } }],
    "current-context": "emulator",
  };
  const kubeconfigPath = join(root, "kubeconfig.yaml");
  writeFileSync(kubeconfigPath, toYaml(kubeconfigObject), { mode: 0o600 });

  return {
    url,
    token,
    kubeconfigPath,
    kubeconfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "emulator", server: url, skipTLSVerify: true }],
        users: [{ name: "baton", token }],
        contexts: [{ name: "emulator", cluster: "emulator", user: "baton", namespace: "default" }],
        currentContext: "emulator",
      });
      return kc;
    },
    jobs: (namespace) => list("jobs", namespace, null),
    pods: (namespace) => list("pods", namespace, null),
    secrets: (namespace) => list("secrets", namespace, null),
    podLog: (namespace, pod) => logs.get(keyOf(namespace, pod)) ?? "",
    requests: () => clone(recorded),
    containerStarts: () => clone(starts),
    openWatches: () => watchers.size,
    inject(fault) {
      switch (fault.type) {
        case "oomKill": {
          let killed = false;
          for (const pod of store.pods.values()) {
            if (pod.metadata.labels?.["job-name"] === fault.job)
              killed = oomKill(keyOf(pod.metadata.namespace, pod.metadata.name)) || killed;
          }
          if (!killed)
            for (const job of store.jobs.values())
              if (job.metadata.name === fault.job)
                pendingOom.add(keyOf(job.metadata.namespace, job.metadata.name));
          return;
        }
        case "dropWatches":
          for (const watcher of [...watchers]) {
            watchers.delete(watcher);
            if (watcher.timer) clearTimeout(watcher.timer);
            watcher.res.destroy();
          }
          return;
        case "refuseWatches":
          refuseWatches = true;
          return;
        case "acceptWatches":
          refuseWatches = false;
          return;
        case "goneOnNextWatch":
          goneOnNextWatch = true;
          return;
        case "compactHistory":
          history = [];
          oldestRetained = revision + 1;
          return;
        case "imagePullError":
          badImages.add(fault.image);
          return;
        case "unschedulable":
          unschedulable =
            fault.message ??
            "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
          return;
        case "schedulable": {
          unschedulable = undefined;
          for (const pod of store.pods.values()) {
            const conditions = (pod.status?.["conditions"] ?? []) as { reason?: string }[];
            if (conditions.some((c) => c.reason === "Unschedulable"))
              later(0, () => kubelet(pod.metadata.namespace, pod.metadata.name));
          }
          return;
        }
        case "deny":
          denied.push({
            verb: fault.verb,
            resource: fault.resource,
            ...(fault.subresource ? { subresource: fault.subresource } : {}),
          });
          return;
      }
    },
    async close() {
      closing = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const watcher of [...watchers]) endWatch(watcher);
      const exits = [...containers.values()].map((c) => {
        killTree(c.child, "SIGKILL");
        return c.exited;
      });
      await Promise.all(exits);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
