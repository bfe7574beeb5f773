// The Kubernetes API emulator itself, through the official client: Status errors, auth, patch
// formats, garbage collection, watch semantics, the kubelet's Secret resolution and TTL clean-up.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Job,
} from "@kubernetes/client-node";
import { fileURLToPath } from "node:url";
import { startKubernetesEmulator, type KubernetesEmulator } from "../../emulators/kubernetes/index.js";

const FAKE_AGENT = fileURLToPath(new URL("../../emulators/kubernetes/fake-agent.mjs", import.meta.url));
const NS = "emu";

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function jobBody(
  name: string,
  extra: Partial<V1Job["spec"]> = {},
  env: NonNullable<NonNullable<V1Job["spec"]>["template"]["spec"]>["containers"][0]["env"] = [],
): V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, labels: { app: "emu-test" } },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels: { app: "emu-test" } },
        spec: {
          restartPolicy: "Never",
          containers: [
            {
              name: "agent",
              image: "busybox",
              command: ["baton", "agent"],
              env,
              volumeMounts: [{ name: "w", mountPath: "/workspace" }],
              workingDir: "/workspace",
            },
          ],
          volumes: [{ name: "w", emptyDir: {} }],
        },
      },
      ...extra,
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<ApiException<unknown>> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiException) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

describe("Kubernetes API emulator", () => {
  let emulator: KubernetesEmulator;
  let batch: BatchV1Api;
  let core: CoreV1Api;

  beforeAll(async () => {
    emulator = await startKubernetesEmulator({ agentCommand: [process.execPath, FAKE_AGENT] });
    batch = emulator.kubeconfig().makeApiClient(BatchV1Api);
    core = emulator.kubeconfig().makeApiClient(CoreV1Api);
  });
  afterAll(async () => {
    await emulator.close();
  });

  test("404 and 409 are Status objects", async () => {
    const missing = await rejection(batch.readNamespacedJob({ name: "nope", namespace: NS }));
    expect(missing.code).toBe(404);
    expect(JSON.parse(String(missing.body))).toMatchObject({
      kind: "Status",
      status: "Failure",
      reason: "NotFound",
      code: 404,
    });

    await batch.createNamespacedJob({ namespace: NS, body: jobBody("dup", { suspend: true }) });
    const duplicate = await rejection(
      batch.createNamespacedJob({ namespace: NS, body: jobBody("dup", { suspend: true }) }),
    );
    expect(duplicate.code).toBe(409);
    expect(JSON.parse(String(duplicate.body))).toMatchObject({
      kind: "Status",
      reason: "AlreadyExists",
      code: 409,
    });
  });

  test("a wrong token is refused with 401", async () => {
    const kc = emulator.kubeconfig();
    const user = kc.getCurrentUser();
    if (user) (user as { token?: string }).token = "wrong";
    const denied = await rejection(kc.makeApiClient(BatchV1Api).listNamespacedJob({ namespace: NS }));
    expect(denied.code).toBe(401);
  });

  test("invalid Job names are rejected with 422", async () => {
    const invalid = await rejection(
      batch.createNamespacedJob({ namespace: NS, body: jobBody(`x${"y".repeat(70)}`) }),
    );
    expect(invalid.code).toBe(422);
  });

  test("merge, strategic-merge and JSON patches; unsupported patch types are refused", async () => {
    await batch.createNamespacedJob({
      namespace: NS,
      body: jobBody("patchme", { suspend: true, parallelism: 1 }),
    });
    const merged = await batch.patchNamespacedJob(
      { name: "patchme", namespace: NS, body: { metadata: { labels: { extra: "yes" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    expect(merged.metadata?.labels).toEqual({ app: "emu-test", extra: "yes" });
    const patched = await batch.patchNamespacedJob({
      name: "patchme",
      namespace: NS,
      body: [{ op: "replace", path: "/spec/parallelism", value: 0 }],
    });
    expect(patched.spec?.parallelism).toBe(0);
    const unsupported = await rejection(
      batch.patchNamespacedJob(
        { name: "patchme", namespace: NS, body: { spec: {} } },
        setHeaderOptions("Content-Type", "application/json"),
      ),
    );
    expect(unsupported.code).toBe(415);
    const immutable = await rejection(
      batch.patchNamespacedJob(
        {
          name: "patchme",
          namespace: NS,
          body: { spec: { template: { spec: { restartPolicy: "OnFailure" } } } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    expect(immutable.code).toBe(422);
  });

  test("immutable Secrets refuse data changes", async () => {
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: "frozen" },
        immutable: true,
        data: { a: Buffer.from("1").toString("base64") },
      },
    });
    const refused = await rejection(
      core.patchNamespacedSecret(
        { name: "frozen", namespace: NS, body: { data: { a: Buffer.from("2").toString("base64") } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    expect(refused.code).toBe(422);
  });

  test("a missing Secret keeps the container in CreateContainerConfigError until it appears", async () => {
    const env = [
      { name: "BATON_RUN_TOKEN", valueFrom: { secretKeyRef: { name: "late-secret", key: "token" } } },
    ];
    await batch.createNamespacedJob({ namespace: NS, body: jobBody("late", {}, env) });
    const waiting = await waitFor("CreateContainerConfigError", () =>
      emulator
        .pods(NS)
        .map(
          (p) =>
            (
              p.status?.["containerStatuses"] as
                { state?: { waiting?: { reason?: string; message?: string } } }[] | undefined
            )?.[0]?.state?.waiting,
        )
        .find((w) => w?.reason === "CreateContainerConfigError"),
    );
    expect(waiting.message).toBe('secret "late-secret" not found');
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: "late-secret" }, data: { token: Buffer.from("abc").toString("base64") } },
    });
    const done = await waitFor("the Job to complete", async () => {
      const job = await batch.readNamespacedJob({ name: "late", namespace: NS });
      return job.status?.conditions?.find((c) => c.type === "Complete" && c.status === "True");
    });
    expect(done.reason).toBe("CompletionsReached");
    const start = emulator.containerStarts().find((s) => s.job === "late");
    expect(start?.env["BATON_RUN_TOKEN"]).toBe("abc");
    // /workspace is mapped into the pod's sandbox.
    expect(start?.workspace).toContain("baton-k8s-emulator-");
  });

  test("deleting a Job without a propagation policy orphans its pods (the batch/v1 default)", async () => {
    await batch.createNamespacedJob({ namespace: NS, body: jobBody("orphaner") });
    await waitFor("the pod", () =>
      emulator.pods(NS).find((p) => p.metadata.labels?.["job-name"] === "orphaner"),
    );
    await batch.deleteNamespacedJob({ name: "orphaner", namespace: NS });
    const pod = await waitFor("the pod to be orphaned", () =>
      emulator
        .pods(NS)
        .find(
          (p) => p.metadata.labels?.["job-name"] === "orphaner" && p.metadata.ownerReferences === undefined,
        ),
    );
    await core.deleteNamespacedPod({ name: pod.metadata.name, namespace: NS });
  });

  test("watch: ADDED for existing objects without a resourceVersion, history replay with one, 410 when expired", async () => {
    const list = await batch.listNamespacedJob({ namespace: NS, labelSelector: "app=emu-test" });
    const rv = list.metadata?.resourceVersion ?? "";
    const events: string[] = [];
    const watch = new Watch(emulator.kubeconfig());
    let ended: unknown = "open";
    const controller = await watch.watch(
      `/apis/batch/v1/namespaces/${NS}/jobs`,
      { labelSelector: "app=emu-test", resourceVersion: rv },
      (type, object: { metadata?: { name?: string } }) =>
        events.push(`${type} ${object.metadata?.name ?? ""}`),
      (err) => (ended = err),
    );
    await batch.createNamespacedJob({ namespace: NS, body: jobBody("watched", { suspend: true }) });
    await waitFor("the ADDED event", () => (events.includes("ADDED watched") ? true : undefined));
    controller.abort();

    emulator.inject({ type: "compactHistory" });
    const expired: { type: string; code?: number }[] = [];
    await new Promise<void>((resolve) => {
      void watch.watch(
        `/apis/batch/v1/namespaces/${NS}/jobs`,
        { resourceVersion: rv },
        (type, object: { code?: number }) =>
          expired.push({ type, ...(object.code !== undefined ? { code: object.code } : {}) }),
        () => resolve(),
      );
    });
    expect(expired).toEqual([{ type: "ERROR", code: 410 }]);
    expect(ended).not.toBe("open");
  });

  test("ttlSecondsAfterFinished deletes a finished Job and, in the background, its pods", async () => {
    await batch.createNamespacedJob({
      namespace: NS,
      body: jobBody("short-lived", { ttlSecondsAfterFinished: 0 }),
    });
    await waitFor("the Job to be deleted", () =>
      emulator.jobs(NS).some((j) => j.metadata.name === "short-lived") ? undefined : true,
    );
    await waitFor("its pods to be collected", () =>
      emulator.pods(NS).some((p) => p.metadata.labels?.["job-name"] === "short-lived") ? undefined : true,
    );
  });
});
