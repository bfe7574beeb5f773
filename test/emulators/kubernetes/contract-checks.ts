// CONTRACT §6, field by field, as reusable assertions: used on the pure builder's output and on what
// the emulated API server stored after a real launch.
import { expect } from "@jest/globals";

export interface ExpectedRun {
  namespace: string;
  runId: string;
  taskId: string;
  runnerUrl: string;
  runToken: string;
  timeoutSeconds: number;
  image: string;
}

type Loose = Record<string, unknown> & {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    uid?: string;
    ownerReferences?: unknown[];
  };
};

const CREDENTIAL_NAME = /GITHUB|OPENAI|SLACK|API_KEY|PRIVATE_KEY|PASSWORD|(?<!RUN_)TOKEN/i;

export function expectAgentLabels(labels: Record<string, string> | undefined, run: ExpectedRun): void {
  expect(labels).toMatchObject({
    "app.kubernetes.io/name": "baton",
    "app.kubernetes.io/component": "agent",
    "baton.dev/task-id": run.taskId.toLowerCase(),
    "baton.dev/run-id": run.runId.toLowerCase(),
  });
}

/** Checks a Job against CONTRACT §6. Works on client-node objects and on raw JSON alike. */
export function expectContractJob(jobInput: unknown, run: ExpectedRun): void {
  const job = JSON.parse(JSON.stringify(jobInput)) as Loose & { spec: Record<string, unknown> };
  expect(job.apiVersion).toBe("batch/v1");
  expect(job.kind).toBe("Job");
  const name = job.metadata?.name ?? "";
  expect(name).toMatch(/^baton-/);
  expect(name.length).toBeLessThanOrEqual(63);
  expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  expect(job.metadata?.namespace).toBe(run.namespace);
  expectAgentLabels(job.metadata?.labels, run);

  const spec = job.spec as {
    backoffLimit?: number;
    activeDeadlineSeconds?: number;
    ttlSecondsAfterFinished?: number;
    template: { metadata?: { labels?: Record<string, string> }; spec: Record<string, unknown> };
  };
  expect(spec.backoffLimit).toBe(0);
  expect(spec.activeDeadlineSeconds).toBe(run.timeoutSeconds);
  expect(typeof spec.ttlSecondsAfterFinished).toBe("number");
  expect(spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
  expectAgentLabels(spec.template.metadata?.labels, run);

  const pod = spec.template.spec as {
    restartPolicy?: string;
    automountServiceAccountToken?: boolean;
    securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type?: string } };
    containers: Record<string, unknown>[];
    initContainers?: unknown[];
    volumes?: { name: string; emptyDir?: unknown }[];
  };
  expect(pod.restartPolicy).toBe("Never");
  expect(pod.automountServiceAccountToken).toBe(false);
  expect(pod.initContainers ?? []).toEqual([]);
  expect(pod.containers.length).toBeGreaterThan(0);
  for (const raw of pod.containers) {
    const c = raw as {
      image?: string;
      command?: string[];
      workingDir?: string;
      env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
      envFrom?: unknown[];
      securityContext?: {
        allowPrivilegeEscalation?: boolean;
        capabilities?: { drop?: string[]; add?: string[] };
        readOnlyRootFilesystem?: boolean;
        runAsNonRoot?: boolean;
        seccompProfile?: { type?: string };
        privileged?: boolean;
      };
      resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
      volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
    };
    expect(c.image).toBe(run.image);
    expect(c.command).toEqual(["baton", "agent"]);
    expect(c.workingDir).toBe("/workspace");
    expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(c.securityContext?.capabilities?.drop).toEqual(["ALL"]);
    expect(c.securityContext?.capabilities?.add ?? []).toEqual([]);
    expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(c.securityContext?.privileged ?? false).toBe(false);
    expect(c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot).toBe(true);
    expect(c.securityContext?.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type).toBe(
      "RuntimeDefault",
    );
    for (const resource of ["cpu", "memory"]) {
      expect(c.resources?.requests?.[resource]).toEqual(expect.any(String));
      expect(c.resources?.limits?.[resource]).toEqual(expect.any(String));
    }
    for (const path of ["/workspace", "/tmp"]) {
      const mount = c.volumeMounts?.find((m) => m.mountPath === path);
      expect(mount).toBeDefined();
      expect(mount?.readOnly ?? false).toBe(false);
      const volume = pod.volumes?.find((v) => v.name === mount?.name);
      expect(volume?.emptyDir).toBeDefined();
    }
    expect(c.envFrom ?? []).toEqual([]);
    const env = c.env ?? [];
    const byName = new Map(env.map((e) => [e.name, e]));
    expect(byName.get("BATON_RUNNER_URL")?.value).toBe(run.runnerUrl);
    const tokenRef = byName.get("BATON_RUN_TOKEN")?.valueFrom?.secretKeyRef;
    expect(tokenRef?.name).toBe(name);
    expect(byName.get("BATON_RUN_TOKEN")?.value).toBeUndefined();
    // No other secret reaches the agent: only the run token comes from a Secret, no credential by name.
    expect(env.filter((e) => e.valueFrom !== undefined).map((e) => e.name)).toEqual(["BATON_RUN_TOKEN"]);
    expect(env.map((e) => e.name).filter((n) => CREDENTIAL_NAME.test(n))).toEqual([]);
    expect(JSON.stringify(env)).not.toContain(run.runToken);
  }
  expect(JSON.stringify(job)).not.toContain(run.runToken);
}

/** Checks the run-token Secret; with `ownerUid`, also its ownerReference to the Job. */
export function expectContractSecret(
  secretInput: unknown,
  run: ExpectedRun,
  jobName: string,
  ownerUid?: string,
): void {
  const secret = JSON.parse(JSON.stringify(secretInput)) as Loose & { data?: Record<string, string> };
  expect(secret.apiVersion).toBe("v1");
  expect(secret.kind).toBe("Secret");
  expect(secret.metadata?.name).toBe(jobName);
  expect(secret.metadata?.namespace).toBe(run.namespace);
  expectAgentLabels(secret.metadata?.labels, run);
  const values = Object.values(secret.data ?? {}).map((v) => Buffer.from(v, "base64").toString("utf8"));
  expect(values).toEqual([run.runToken]);
  if (ownerUid !== undefined) {
    expect(secret.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ apiVersion: "batch/v1", kind: "Job", name: jobName, uid: ownerUid }),
    ]);
  }
}
