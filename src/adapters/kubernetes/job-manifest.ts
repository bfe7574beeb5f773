// Builds the agent Job and its run-token Secret (CONTRACT §6). Pure: same input, same objects; no I/O.
import { createHash } from "node:crypto";
import type { V1Job, V1OwnerReference, V1Secret } from "@kubernetes/client-node";
import type { RunPhase } from "../../shared/run-spec.js";

export const LABEL_NAME = "app.kubernetes.io/name";
export const LABEL_COMPONENT = "app.kubernetes.io/component";
export const LABEL_TASK_ID = "baton.dev/task-id";
export const LABEL_RUN_ID = "baton.dev/run-id";
export const LABEL_PHASE = "baton.dev/phase";
export const ANNOTATION_REPO = "baton.dev/repo";
export const ANNOTATION_ATTEMPT = "baton.dev/attempt";
/** The exact ids (labels hold them lower-cased, and hashed if they would not fit a label value). */
export const ANNOTATION_RUN_ID = "baton.dev/run-id";
export const ANNOTATION_TASK_ID = "baton.dev/task-id";
/** The selector that finds every agent object Baton created. */
export const AGENT_SELECTOR = `${LABEL_NAME}=baton,${LABEL_COMPONENT}=agent`;
export const AGENT_CONTAINER = "agent";
export const RUN_TOKEN_KEY = "token";
export const AGENT_UID = 10001;

export interface AgentResources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

export const DEFAULT_AGENT_RESOURCES: AgentResources = {
  requests: { cpu: "1", memory: "2Gi" },
  limits: { cpu: "2", memory: "2Gi" },
};

export interface AgentJobInput {
  namespace: string;
  runId: string;
  taskId: string;
  phase: RunPhase;
  attempt: number;
  repo: string;
  image: string;
  runnerUrl: string;
  runToken: string;
  timeoutSeconds: number;
  resources?: AgentResources;
  ttlSecondsAfterFinished?: number;
  /** Size limit of the `/workspace` emptyDir (clone, dependencies, build output). */
  workspaceSizeLimit?: string;
  tmpSizeLimit?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** Optional PriorityClass / ServiceAccount for agent pods (the token is never mounted). */
  priorityClassName?: string;
  serviceAccountName?: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const MAX_LABEL = 63;

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 10);
}

/**
 * A DNS-1123 label of at most 63 characters derived from `value`: kept as is when it already is one,
 * otherwise sanitised and suffixed with a hash of the original, so distinct inputs stay distinct.
 */
function dnsLabel(prefix: string, value: string): string {
  const plain = `${prefix}${value.toLowerCase()}`;
  if (plain.length <= MAX_LABEL && DNS_LABEL.test(plain) && value === value.toLowerCase()) return plain;
  const hash = shortHash(value);
  const cleaned = plain.replace(/[^a-z0-9-]+/g, "-").replace(/-+/g, "-");
  const head = cleaned.slice(0, MAX_LABEL - hash.length - 1).replace(/-+$/, "");
  return `${head}-${hash}`;
}

/** `baton-<runId>`: deterministic per run, so a second create for the same run answers 409. */
export function jobNameFor(runId: string): string {
  return dnsLabel("baton-", runId);
}

/** A label value for an id (lower case; hashed when it would not be a valid label value). */
export function labelValueFor(id: string): string {
  const lower = id.toLowerCase();
  if (lower.length <= MAX_LABEL && LABEL_VALUE.test(lower)) return lower;
  return dnsLabel("", id);
}

export function agentLabels(
  input: Pick<AgentJobInput, "runId" | "taskId" | "phase">,
): Record<string, string> {
  return {
    [LABEL_NAME]: "baton",
    [LABEL_COMPONENT]: "agent",
    [LABEL_TASK_ID]: labelValueFor(input.taskId),
    [LABEL_RUN_ID]: labelValueFor(input.runId),
    [LABEL_PHASE]: input.phase,
  };
}

export function validateAgentJobInput(input: AgentJobInput): string[] {
  const problems: string[] = [];
  if (!DNS_LABEL.test(input.namespace))
    problems.push(`namespace ${JSON.stringify(input.namespace)} is not a DNS-1123 label`);
  if (input.runId.trim() === "") problems.push("runId is empty");
  if (input.taskId.trim() === "") problems.push("taskId is empty");
  if (input.image.trim() === "") problems.push("image is empty");
  if (input.runToken === "") problems.push("runToken is empty");
  if (!Number.isInteger(input.timeoutSeconds) || input.timeoutSeconds <= 0) {
    problems.push(`timeoutSeconds must be a positive integer (got ${input.timeoutSeconds})`);
  }
  try {
    new URL(input.runnerUrl);
  } catch {
    problems.push("runnerUrl is not a URL");
  }
  return problems;
}

/**
 * The Job (created suspended: the executor unsuspends it once the Secret carries its
 * ownerReference) and the Secret without ownerReference (add it with `ownedSecret`, which needs the
 * Job's uid from the API server).
 */
export function buildAgentJob(input: AgentJobInput): { job: V1Job; secret: V1Secret } {
  const problems = validateAgentJobInput(input);
  if (problems.length > 0) throw new Error(`invalid agent job input: ${problems.join("; ")}`);
  const name = jobNameFor(input.runId);
  const labels = agentLabels(input);
  const annotations = {
    [ANNOTATION_REPO]: input.repo,
    [ANNOTATION_ATTEMPT]: String(input.attempt),
    [ANNOTATION_RUN_ID]: input.runId,
    [ANNOTATION_TASK_ID]: input.taskId,
  };
  const resources = input.resources ?? DEFAULT_AGENT_RESOURCES;

  const job: V1Job = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: input.namespace, labels: { ...labels }, annotations: { ...annotations } },
    spec: {
      suspend: true,
      backoffLimit: 0,
      completions: 1,
      parallelism: 1,
      activeDeadlineSeconds: input.timeoutSeconds,
      ttlSecondsAfterFinished: input.ttlSecondsAfterFinished ?? 3600,
      template: {
        metadata: { labels: { ...labels }, annotations: { ...annotations } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          ...(input.serviceAccountName ? { serviceAccountName: input.serviceAccountName } : {}),
          ...(input.priorityClassName ? { priorityClassName: input.priorityClassName } : {}),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: AGENT_UID,
            runAsGroup: AGENT_UID,
            fsGroup: AGENT_UID,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: AGENT_CONTAINER,
              image: input.image,
              imagePullPolicy: input.imagePullPolicy ?? "IfNotPresent",
              command: ["baton", "agent"],
              workingDir: "/workspace",
              env: [
                { name: "BATON_RUNNER_URL", value: input.runnerUrl },
                {
                  name: "BATON_RUN_TOKEN",
                  valueFrom: { secretKeyRef: { name, key: RUN_TOKEN_KEY, optional: false } },
                },
                { name: "HOME", value: "/workspace" },
              ],
              resources: {
                requests: { cpu: resources.requests.cpu, memory: resources.requests.memory },
                limits: { cpu: resources.limits.cpu, memory: resources.limits.memory },
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                capabilities: { drop: ["ALL"] },
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                seccompProfile: { type: "RuntimeDefault" },
              },
              volumeMounts: [
                { name: "workspace", mountPath: "/workspace" },
                { name: "tmp", mountPath: "/tmp" },
              ],
            },
          ],
          volumes: [
            { name: "workspace", emptyDir: { sizeLimit: input.workspaceSizeLimit ?? "10Gi" } },
            { name: "tmp", emptyDir: { sizeLimit: input.tmpSizeLimit ?? "1Gi" } },
          ],
        },
      },
    },
  };

  const secret: V1Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: input.namespace, labels: { ...labels }, annotations: { ...annotations } },
    type: "Opaque",
    immutable: true,
    data: { [RUN_TOKEN_KEY]: Buffer.from(input.runToken, "utf8").toString("base64") },
  };
  return { job, secret };
}

/** The ownerReference that makes the Job own its Secret (deleted with it by the garbage collector). */
export function jobOwnerReference(job: { name: string; uid: string }): V1OwnerReference {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    name: job.name,
    uid: job.uid,
    controller: true,
    blockOwnerDeletion: false,
  };
}

export function ownedSecret(secret: V1Secret, job: { name: string; uid: string }): V1Secret {
  return { ...secret, metadata: { ...secret.metadata, ownerReferences: [jobOwnerReference(job)] } };
}
