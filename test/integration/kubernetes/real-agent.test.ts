// The real `baton agent`, launched through the Kubernetes executor: the emulator's kubelet runs the
// compiled agent with the Job's environment (runner URL, token from the owned Secret, HOME at the
// mapped /workspace), and the agent completes a plan run against the fake runner and model emulator.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { KubernetesExecutor } from "../../../src/adapters/kubernetes/executor.js";
import { jobNameFor } from "../../../src/adapters/kubernetes/job-manifest.js";
import { ensureBuilt } from "../../support/build.js";
import { startKubernetesEmulator, type KubernetesEmulator } from "../../emulators/kubernetes/index.js";
import { TOKEN, createFixtureRepo, startSession, type Fixture, type Session } from "../agent/harness.js";

let fixture: Fixture;
let session: Session;
let emulator: KubernetesEmulator;
let executor: KubernetesExecutor;

beforeAll(async () => {
  fixture = createFixtureRepo();
  session = await startSession({
    fixture,
    phase: "plan",
    script: [
      { toolCalls: [{ name: "shell", arguments: { command: ["node", "test.js"] } }] },
      {
        toolCalls: [
          { name: "submit_plan", arguments: { summary: "Make add() add.", steps: ["Fix add in math.js"] } },
        ],
      },
    ],
  });
  const entry = await ensureBuilt();
  emulator = await startKubernetesEmulator({
    agentCommand: [process.execPath, entry],
    extraEnv: { LANG: "C.UTF-8", LOG_LEVEL: "warn" },
  });
  executor = new KubernetesExecutor({ kubeConfig: emulator.kubeconfig(), namespace: "baton-agents" });
}, 180_000);

afterAll(async () => {
  await executor?.close();
  await emulator?.close();
  await session?.close();
  fixture?.cleanup();
});

test("a plan run of the real agent succeeds inside an emulated Job pod", async () => {
  const runId = "t-abc123-p1-a1";
  const statuses: string[] = [];
  const stop = executor.watch((run) => {
    if (run.runId === runId) statuses.push(run.status.state);
  });
  try {
    const outcome = await executor.launch({
      runId,
      taskId: "T-ABC123",
      phase: "plan",
      attempt: 1,
      repo: "acme/widget",
      runToken: TOKEN,
      image: "ghcr.io/baton-dev/baton-agent:test",
      timeoutSeconds: 120,
      runnerUrl: session.runner.url,
    });
    expect(outcome).toBe("launched");
    const deadline = Date.now() + 90_000;
    while (!statuses.some((s) => s === "succeeded" || s === "failed") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const status = await executor.status(runId);
    const pod = emulator
      .pods("baton-agents")
      .find((p) => p.metadata.labels?.["job-name"] === jobNameFor(runId));
    const log = pod ? emulator.podLog("baton-agents", pod.metadata.name) : "";
    expect({ status, log }).toEqual({ status: { state: "succeeded", exitCode: 0 }, log: expect.any(String) });
    expect(statuses).toContain("running");

    // The agent authenticated with the token it got from the Secret, and did the run.
    expect(session.runner.unauthorized).toBe(0);
    expect(session.runner.result).toMatchObject({
      outcome: "plan",
      summary: "Make add() add.",
      steps: ["Fix add in math.js"],
      // The command really ran in the pod's workspace: the fixture's test fails before the fix.
      evidence: [expect.objectContaining({ argv: ["node", "test.js"], exitCode: 1 })],
    });
    expect(session.runner.events.map((e) => e.type)).toContain("run.started");
    const start = emulator.containerStarts().find((s) => s.job === jobNameFor(runId));
    expect(start?.env["BATON_RUN_TOKEN"]).toBe(TOKEN);
    expect(start?.env["HOME"]).toBe(start?.workspace);
    expect(existsSync(join(start?.workspace ?? "/nonexistent", "repo", "math.js"))).toBe(true);
    // Nothing but the Job's own variables (and PATH/LANG from the "image") reached the agent.
    expect(Object.keys(start?.env ?? {}).sort()).toEqual(
      ["BATON_RUNNER_URL", "BATON_RUN_TOKEN", "HOME", "LANG", "LOG_LEVEL", "PATH", "TMPDIR"].sort(),
    );
  } finally {
    stop();
  }
}, 120_000);
