// The Kubernetes executor through @kubernetes/client-node against the emulated API server, whose
// simulated kubelet runs a real process (test/emulators/kubernetes/fake-agent.mjs) for each pod.
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import type { ExecutorRun, LaunchRequest } from "../../../src/core/ports/executor.js";
import {
  KubernetesExecutor,
  type KubernetesExecutorOptions,
} from "../../../src/adapters/kubernetes/executor.js";
import { jobNameFor } from "../../../src/adapters/kubernetes/job-manifest.js";
import { startKubernetesEmulator, type KubernetesEmulator } from "../../emulators/kubernetes/index.js";
import { expectContractJob, expectContractSecret } from "../../emulators/kubernetes/contract-checks.js";

const FAKE_AGENT = fileURLToPath(new URL("../../emulators/kubernetes/fake-agent.mjs", import.meta.url));
const NAMESPACE = "baton-agents";

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let counter = 0;
function request(
  mode: "exit0" | "exit1" | "sleep" | "bigLog",
  overrides: Partial<LaunchRequest> = {},
): LaunchRequest {
  counter += 1;
  const suffix = randomBytes(3).toString("hex").toUpperCase().slice(0, 6);
  const taskId = `T-${suffix}`;
  return {
    runId: `${taskId.toLowerCase()}-i${counter}-a1`,
    taskId,
    phase: "implement",
    attempt: 1,
    repo: "acme/web",
    runToken: `tok-${randomBytes(12).toString("hex")}`,
    image: "ghcr.io/acme/baton-agent:1",
    timeoutSeconds: 600,
    runnerUrl: `http://127.0.0.1:9/?mode=${mode}`,
    ...overrides,
  };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

describe("KubernetesExecutor against the emulated API server", () => {
  let emulator: KubernetesEmulator;
  const executors: KubernetesExecutor[] = [];

  function executor(options: Partial<KubernetesExecutorOptions> = {}): KubernetesExecutor {
    const created = new KubernetesExecutor({
      kubeConfig: emulator.kubeconfig(),
      namespace: NAMESPACE,
      reconcileIntervalMs: 60_000,
      backoff: { initialMs: 50, maxMs: 200 },
      ...options,
    });
    executors.push(created);
    return created;
  }

  /** Collects every status the watch reports, per run. */
  function follow(exec: KubernetesExecutor) {
    const seen: ExecutorRun[] = [];
    const stop = exec.watch((run) => seen.push(run));
    const statesOf = (runId: string) => seen.filter((r) => r.runId === runId).map((r) => r.status);
    const final = (runId: string) =>
      waitFor(`a final status for ${runId}`, () =>
        statesOf(runId).find((s) => s.state === "succeeded" || s.state === "failed"),
      );
    return { seen, stop, statesOf, final };
  }

  beforeAll(async () => {
    emulator = await startKubernetesEmulator({ agentCommand: [process.execPath, FAKE_AGENT] });
  });
  afterEach(async () => {
    await Promise.all(executors.splice(0).map((e) => e.close()));
  });
  afterAll(async () => {
    await emulator.close();
  });

  test("launch creates a Job and an owned Secret that satisfy CONTRACT §6, and the kubelet runs the agent with the token resolved", async () => {
    const exec = executor();
    const watch = follow(exec);
    const req = request("exit0");
    expect(await exec.launch(req)).toBe("launched");
    const name = jobNameFor(req.runId);

    const job = emulator.jobs(NAMESPACE).find((j) => j.metadata.name === name);
    expect(job).toBeDefined();
    const expected = { namespace: NAMESPACE, ...req };
    expectContractJob(job, expected);
    const secret = emulator.secrets(NAMESPACE).find((s) => s.metadata.name === name);
    expectContractSecret(secret, expected, name, job?.metadata.uid);

    const final = await watch.final(req.runId);
    expect(final).toEqual({ state: "succeeded", exitCode: 0 });
    expect(watch.statesOf(req.runId).map((s) => s.state)).toContain("running");

    // The process really ran, with the Secret's value in its environment and the Secret already owned.
    const start = emulator.containerStarts().find((s) => s.job === name);
    expect(start?.argv).toEqual([process.execPath, FAKE_AGENT]);
    expect(start?.secretOwners[name]).toEqual([
      expect.objectContaining({ kind: "Job", name, uid: job?.metadata.uid }),
    ]);
    const pod = emulator.pods(NAMESPACE).find((p) => p.metadata.labels?.["job-name"] === name);
    expect(pod?.metadata.labels).toMatchObject({
      "baton.dev/run-id": req.runId,
      "baton.dev/task-id": req.taskId.toLowerCase(),
    });
    const log = emulator.podLog(NAMESPACE, pod?.metadata.name ?? "");
    expect(log).toContain(`token-sha256=${sha256(req.runToken)}`);
    expect(log).toContain(`home=${start?.workspace}`);
    expect(existsSync(join(start?.workspace ?? "/nonexistent", "marker.txt"))).toBe(true);

    // The Job was created suspended, then released with a merge patch, and the Secret came in between.
    const calls = emulator.requests().filter((r) => r.path.includes(`/${name}`) || r.method === "POST");
    const order = calls
      .filter(
        (r) =>
          (r.method === "POST" && (r.path.endsWith("/jobs") || r.path.endsWith("/secrets"))) ||
          r.method === "PATCH",
      )
      .filter((r) => r.method === "PATCH" || JSON.stringify(r.body).includes(name))
      .map((r) => `${r.method} ${r.path.split("/").slice(-2).join("/")}`);
    expect(order).toEqual([`POST ${NAMESPACE}/jobs`, `POST ${NAMESPACE}/secrets`, `PATCH jobs/${name}`]);
    const patch = emulator.requests().find((r) => r.method === "PATCH" && r.path.endsWith(`/jobs/${name}`));
    expect(patch?.contentType).toBe("application/merge-patch+json");
    expect(patch?.body).toEqual({ spec: { suspend: false } });
    expect(await exec.status(req.runId)).toEqual({ state: "succeeded", exitCode: 0 });
    watch.stop();
  });

  test("launching the same run twice (even concurrently) yields one Job: the second is already_launched", async () => {
    const exec = executor();
    const other = executor();
    const req = request("sleep");
    const outcomes = await Promise.all([exec.launch(req), other.launch(req)]);
    expect(outcomes.sort()).toEqual(["already_launched", "launched"]);
    expect(await exec.launch(req)).toBe("already_launched");
    const name = jobNameFor(req.runId);
    expect(emulator.jobs(NAMESPACE).filter((j) => j.metadata.name === name)).toHaveLength(1);
    expect(emulator.secrets(NAMESPACE).filter((s) => s.metadata.name === name)).toHaveLength(1);
    await waitFor("the pod to run", async () =>
      (await exec.status(req.runId)).state === "running" ? true : undefined,
    );
    expect(emulator.pods(NAMESPACE).filter((p) => p.metadata.labels?.["job-name"] === name)).toHaveLength(1);
    await exec.cancel(req.runId);
  });

  test("re-attaching to a Job left suspended by a crashed launcher finishes the launch", async () => {
    const exec = executor();
    const req = request("exit0");
    const name = jobNameFor(req.runId);
    // Simulate a worker that died right after creating the Job: create it suspended, without Secret.
    const { buildAgentJob } = await import("../../../src/adapters/kubernetes/job-manifest.js");
    const { BatchV1Api } = await import("@kubernetes/client-node");
    const batch = emulator.kubeconfig().makeApiClient(BatchV1Api);
    const { job } = buildAgentJob({ namespace: NAMESPACE, ...req });
    await batch.createNamespacedJob({ namespace: NAMESPACE, body: job });
    expect(await exec.status(req.runId)).toMatchObject({ state: "pending" });

    expect(await exec.launch(req)).toBe("already_launched");
    await waitFor("the run to succeed", async () =>
      (await exec.status(req.runId)).state === "succeeded" ? true : undefined,
    );
    const stored = emulator.jobs(NAMESPACE).find((j) => j.metadata.name === name);
    expectContractSecret(
      emulator.secrets(NAMESPACE).find((s) => s.metadata.name === name),
      { namespace: NAMESPACE, ...req },
      name,
      stored?.metadata.uid,
    );
  });

  test("a stale Secret of the same name (not owned by this Job) is replaced before the pod starts", async () => {
    const exec = executor();
    const req = request("exit0");
    const name = jobNameFor(req.runId);
    const { CoreV1Api } = await import("@kubernetes/client-node");
    const core = emulator.kubeconfig().makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({
      namespace: NAMESPACE,
      body: { metadata: { name }, data: { token: Buffer.from("stale-token").toString("base64") } },
    });
    expect(await exec.launch(req)).toBe("launched");
    await waitFor("success", async () =>
      (await exec.status(req.runId)).state === "succeeded" ? true : undefined,
    );
    const job = emulator.jobs(NAMESPACE).find((j) => j.metadata.name === name);
    expectContractSecret(
      emulator.secrets(NAMESPACE).find((s) => s.metadata.name === name),
      { namespace: NAMESPACE, ...req },
      name,
      job?.metadata.uid,
    );
    expect(emulator.containerStarts().find((s) => s.job === name)?.env["BATON_RUN_TOKEN"]).toBe(req.runToken);
  });

  test("a failing agent is reported with its exit code and the last lines of its log", async () => {
    const exec = executor();
    const watch = follow(exec);
    const req = request("exit1");
    await exec.launch(req);
    const final = await watch.final(req.runId);
    expect(final).toMatchObject({
      state: "failed",
      reason: "Error",
      exitCode: 1,
      message: "The agent exited with code 1.",
    });
    expect(final.state === "failed" && final.logTail).toContain("fatal: the fake agent was told to fail");
    watch.stop();
  });

  test("the log tail of a failed run holds only the last lines", async () => {
    const exec = executor({ logTailLines: 5 });
    const req = request("bigLog");
    await exec.launch(req);
    const status = await waitFor("the failure", async () => {
      const s = await exec.status(req.runId);
      return s.state === "failed" ? s : undefined;
    });
    expect(status).toEqual({
      state: "failed",
      reason: "Error",
      exitCode: 1,
      message: "The agent exited with code 1.",
      logTail: "line 496\nline 497\nline 498\nline 499\nline 500",
    });
  });

  test("cancel deletes the Job with background propagation: pods and Secret are garbage-collected, the process stops", async () => {
    const exec = executor();
    const watch = follow(exec);
    const req = request("sleep");
    await exec.launch(req);
    const name = jobNameFor(req.runId);
    await waitFor("running", () =>
      watch.statesOf(req.runId).some((s) => s.state === "running") ? true : undefined,
    );
    const start = emulator.containerStarts().find((s) => s.job === name);
    expect(start).toBeDefined();

    await exec.cancel(req.runId);
    const deletion = emulator
      .requests()
      .find((r) => r.method === "DELETE" && r.path.endsWith(`/jobs/${name}`));
    expect(deletion?.query["propagationPolicy"]).toBe("Background");
    await waitFor("pods and secret to be collected", () =>
      emulator.pods(NAMESPACE).some((p) => p.metadata.labels?.["job-name"] === name) ||
      emulator.secrets(NAMESPACE).some((s) => s.metadata.name === name) ||
      emulator.jobs(NAMESPACE).some((j) => j.metadata.name === name)
        ? undefined
        : true,
    );
    expect(await exec.status(req.runId)).toEqual({ state: "gone" });
    await waitFor("the watch to report gone", () =>
      watch.statesOf(req.runId).some((s) => s.state === "gone") ? true : undefined,
    );
    // Idempotent.
    await exec.cancel(req.runId);
    watch.stop();
  });

  test("an OOM-killed agent: the message says it ran out of memory and names the limit", async () => {
    const exec = executor({
      resources: { requests: { cpu: "1", memory: "512Mi" }, limits: { cpu: "2", memory: "768Mi" } },
    });
    const watch = follow(exec);
    const req = request("sleep");
    await exec.launch(req);
    await waitFor("the agent to be working", () =>
      emulator
        .pods(NAMESPACE)
        .some(
          (p) =>
            emulator.podLog(NAMESPACE, p.metadata.name).includes("working") &&
            p.metadata.labels?.["job-name"] === jobNameFor(req.runId),
        )
        ? true
        : undefined,
    );
    emulator.inject({ type: "oomKill", job: jobNameFor(req.runId) });
    const final = await watch.final(req.runId);
    expect(final).toMatchObject({
      state: "failed",
      reason: "OOMKilled",
      exitCode: 137,
      message: "The agent ran out of memory (limit 768Mi).",
    });
    expect(final.state === "failed" && final.logTail).toContain("working");
    watch.stop();
  });

  test("the default memory limit is named as 2Gi", async () => {
    const exec = executor();
    const req = request("sleep");
    await exec.launch(req);
    emulator.inject({ type: "oomKill", job: jobNameFor(req.runId) });
    const status = await waitFor("the OOM failure", async () => {
      const s = await exec.status(req.runId);
      return s.state === "failed" ? s : undefined;
    });
    expect(status).toMatchObject({
      reason: "OOMKilled",
      message: "The agent ran out of memory (limit 2Gi).",
    });
  });

  test("a run past activeDeadlineSeconds fails with DeadlineExceeded and its process is killed", async () => {
    const exec = executor();
    const watch = follow(exec);
    const req = request("sleep", { timeoutSeconds: 1 });
    await exec.launch(req);
    const final = await watch.final(req.runId);
    expect(final).toEqual({
      state: "failed",
      reason: "DeadlineExceeded",
      message: "The run hit its time limit of 1 second.",
    });
    const name = jobNameFor(req.runId);
    await waitFor("the pod to be deleted", () =>
      emulator.pods(NAMESPACE).some((p) => p.metadata.labels?.["job-name"] === name) ? undefined : true,
    );
    watch.stop();
  });

  test("an image that cannot be pulled fails the run and the message names the image", async () => {
    const exec = executor();
    const watch = follow(exec);
    const image = "ghcr.io/acme/does-not-exist:404";
    emulator.inject({ type: "imagePullError", image });
    const req = request("exit0", { image });
    await exec.launch(req);
    const final = await watch.final(req.runId);
    expect(final).toMatchObject({ state: "failed", reason: "ImagePullBackOff" });
    expect(final.state === "failed" && final.message).toContain(image);
    expect(await exec.status(req.runId)).toMatchObject({ state: "failed", reason: "ImagePullBackOff" });
    await exec.cancel(req.runId);
    watch.stop();
  });

  test("an unschedulable pod is pending with the scheduler's message, then fails after the grace period", async () => {
    const message = "0/2 nodes are available: 2 Insufficient cpu.";
    emulator.inject({ type: "unschedulable", message });
    try {
      const patient = executor();
      const req = request("exit0");
      await patient.launch(req);
      const pending = await waitFor("pending with a message", async () => {
        const s = await patient.status(req.runId);
        return s.state === "pending" && s.message?.includes("scheduled") ? s : undefined;
      });
      expect(pending).toEqual({
        state: "pending",
        message: `The agent pod could not be scheduled: ${message}`,
      });

      const impatient = executor({ unschedulableGraceMs: 0 });
      expect(await impatient.status(req.runId)).toEqual({
        state: "failed",
        reason: "Unschedulable",
        message: `The agent pod could not be scheduled: ${message}`,
      });
      await patient.cancel(req.runId);
    } finally {
      emulator.inject({ type: "schedulable" });
    }
  });

  test("a dropped watch misses no terminal state: the watch resumes from its last resourceVersion", async () => {
    const exec = executor();
    const watch = follow(exec);
    const req = request("sleep");
    await exec.launch(req);
    await waitFor("running", () =>
      watch.statesOf(req.runId).some((s) => s.state === "running") ? true : undefined,
    );
    // Cut every watch and keep them down while the run ends.
    emulator.inject({ type: "refuseWatches" });
    emulator.inject({ type: "dropWatches" });
    emulator.inject({ type: "oomKill", job: jobNameFor(req.runId) });
    await waitFor("the Job to fail in the API server", () =>
      emulator
        .jobs(NAMESPACE)
        .find(
          (j) => j.metadata.name === jobNameFor(req.runId) && JSON.stringify(j.status).includes('"Failed"'),
        ),
    );
    expect(watch.statesOf(req.runId).some((s) => s.state === "failed")).toBe(false);
    emulator.inject({ type: "acceptWatches" });
    const final = await watch.final(req.runId);
    expect(final).toMatchObject({ state: "failed", reason: "OOMKilled" });
    // Exactly one terminal report.
    expect(watch.statesOf(req.runId).filter((s) => s.state === "failed")).toHaveLength(1);
    watch.stop();
  });

  test("410 Gone on reconnect triggers a re-list that finds the terminal state", async () => {
    const exec = executor();
    const watch = follow(exec);
    const req = request("sleep");
    await exec.launch(req);
    await waitFor("running", () =>
      watch.statesOf(req.runId).some((s) => s.state === "running") ? true : undefined,
    );
    const listsBefore = emulator
      .requests()
      .filter((r) => r.method === "GET" && r.path.endsWith("/jobs") && r.query["watch"] === undefined).length;
    emulator.inject({ type: "refuseWatches" });
    emulator.inject({ type: "dropWatches" });
    emulator.inject({ type: "oomKill", job: jobNameFor(req.runId) });
    await waitFor("the Job to fail in the API server", () =>
      emulator
        .jobs(NAMESPACE)
        .find(
          (j) => j.metadata.name === jobNameFor(req.runId) && JSON.stringify(j.status).includes('"Failed"'),
        ),
    );
    emulator.inject({ type: "compactHistory" });
    emulator.inject({ type: "acceptWatches" });
    const final = await watch.final(req.runId);
    expect(final).toMatchObject({ state: "failed", reason: "OOMKilled" });
    // The 410 makes the executor re-list (the terminal state may reach it first through the pod
    // status, so wait for the re-list rather than expecting it to have happened already).
    await waitFor("a re-list after 410 Gone", () =>
      emulator
        .requests()
        .filter((r) => r.method === "GET" && r.path.endsWith("/jobs") && r.query["watch"] === undefined)
        .length > listsBefore
        ? true
        : undefined,
    );
    watch.stop();
  });

  test("the periodic reconcile re-lists Jobs and pods, and a watch that ends is renewed from its resourceVersion", async () => {
    const exec = executor({ reconcileIntervalMs: 100, watchTimeoutSeconds: 1 });
    const countLists = () =>
      emulator
        .requests()
        .filter(
          (r) =>
            r.method === "GET" &&
            r.path === `/apis/batch/v1/namespaces/${NAMESPACE}/jobs` &&
            r.query["watch"] === undefined &&
            r.query["limit"] === undefined,
        ).length;
    const before = countLists();
    const watch = follow(exec);
    await waitFor("three re-lists", () => (countLists() - before >= 3 ? true : undefined));
    // Server-side watch timeouts end watches cleanly; the executor resumes from where it was.
    await waitFor("a resumed watch", () =>
      emulator
        .requests()
        .some(
          (r) =>
            r.query["watch"] === "true" &&
            r.path.endsWith("/jobs") &&
            r.query["resourceVersion"] !== undefined,
        )
        ? true
        : undefined,
    );
    const req = request("exit0");
    await exec.launch(req);
    expect(await watch.final(req.runId)).toEqual({ state: "succeeded", exitCode: 0 });
    watch.stop();
  });

  test("list() returns every Baton Job with its run id, for reconciliation on start", async () => {
    const exec = executor();
    const a = request("sleep");
    const b = request("exit0");
    await exec.launch(a);
    await exec.launch(b);
    await waitFor("b to finish", async () =>
      (await exec.status(b.runId)).state === "succeeded" ? true : undefined,
    );
    const runs = await exec.list();
    const byId = new Map(runs.map((r) => [r.runId, r]));
    expect(byId.get(a.runId)).toMatchObject({ runId: a.runId, taskId: a.taskId });
    expect(["pending", "running"]).toContain(byId.get(a.runId)?.status.state);
    expect(byId.get(b.runId)).toEqual({
      runId: b.runId,
      taskId: b.taskId,
      status: { state: "succeeded", exitCode: 0 },
    });
    await exec.cancel(a.runId);
  });

  test("run ids that do not fit a label (long, upper case) come back exactly from list() and watch()", async () => {
    const exec = executor();
    const watch = follow(exec);
    const req = request("exit0");
    const runId = `${req.taskId}-Implement-${"x".repeat(80)}`;
    await exec.launch({ ...req, runId });
    const name = jobNameFor(runId);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(await watch.final(runId)).toEqual({ state: "succeeded", exitCode: 0 });
    expect((await exec.list()).find((r) => r.runId === runId)).toEqual({
      runId,
      taskId: req.taskId,
      status: { state: "succeeded", exitCode: 0 },
    });
    expect(await exec.status(runId)).toEqual({ state: "succeeded", exitCode: 0 });
    await exec.cancel(runId);
    await waitFor("gone", () => (watch.statesOf(runId).some((s) => s.state === "gone") ? true : undefined));
    watch.stop();
  });

  test("status() of an unknown run is gone; ready() is true while the API server answers", async () => {
    const exec = executor();
    expect(await exec.status("t-zzzzzz-p1-a1")).toEqual({ state: "gone" });
    expect(await exec.ready()).toBe(true);
  });
});

test("ready() is false when the API server does not answer", async () => {
  const emulator = await startKubernetesEmulator();
  const kubeConfig = emulator.kubeconfig();
  await emulator.close();
  const exec = new KubernetesExecutor({ kubeConfig, namespace: NAMESPACE, readyTimeoutMs: 2000 });
  expect(await exec.ready()).toBe(false);
  await exec.close();
});
