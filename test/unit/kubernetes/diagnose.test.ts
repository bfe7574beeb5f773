// Failure diagnosis from Job and pod objects: one clear sentence per cause.
import { describe, expect, test } from "@jest/globals";
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { diagnose, formatDuration } from "../../../src/adapters/kubernetes/diagnose.js";
import { buildAgentJob } from "../../../src/adapters/kubernetes/job-manifest.js";

const NOW = Date.parse("2026-11-25T12:00:00Z");
const options = { now: NOW, unschedulableGraceMs: 60_000, startFailureGraceMs: 60_000 };

function job(
  patch: {
    suspend?: boolean;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  } = {},
): V1Job {
  const { job: built } = buildAgentJob({
    namespace: "baton",
    runId: "t-aaaaaa-i1-a1",
    taskId: "T-AAAAAA",
    phase: "implement",
    attempt: 1,
    repo: "acme/web",
    image: "ghcr.io/acme/agent:1",
    runnerUrl: "http://bot:3000",
    runToken: "tok",
    timeoutSeconds: 1800,
  });
  return {
    ...built,
    spec: { ...built.spec!, suspend: patch.suspend ?? false },
    status: { conditions: patch.conditions ?? [] },
  } as V1Job;
}

function pod(status: V1Pod["status"], created = "2026-11-25T11:59:00Z"): V1Pod {
  const template = job().spec!.template;
  return { metadata: { name: "p", creationTimestamp: new Date(created) }, spec: template.spec!, status };
}

describe("diagnose", () => {
  test("no Job is gone; a suspended Job is pending", () => {
    expect(diagnose(undefined, [], options)).toEqual({ state: "gone" });
    expect(diagnose(job({ suspend: true }), [], options).state).toBe("pending");
  });

  test("a running container is running; Complete is succeeded", () => {
    expect(
      diagnose(
        job(),
        [
          pod({
            phase: "Running",
            containerStatuses: [
              { name: "agent", image: "", imageID: "", ready: true, restartCount: 0, state: { running: {} } },
            ],
          }),
        ],
        options,
      ),
    ).toEqual({ state: "running" });
    expect(diagnose(job({ conditions: [{ type: "Complete", status: "True" }] }), [], options)).toEqual({
      state: "succeeded",
      exitCode: 0,
    });
  });

  test("OOMKilled names the memory limit", () => {
    const oom = pod({
      phase: "Failed",
      containerStatuses: [
        {
          name: "agent",
          image: "",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 137, reason: "OOMKilled" } },
        },
      ],
    });
    const status = diagnose(
      job({ conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded" }] }),
      [oom],
      options,
    );
    expect(status).toEqual({
      state: "failed",
      exitCode: 137,
      reason: "OOMKilled",
      message: "The agent ran out of memory (limit 2Gi).",
    });
    // The pod alone is enough when the Job controller has not caught up yet.
    expect(diagnose(job(), [oom], options)).toMatchObject({ reason: "OOMKilled" });
  });

  test("DeadlineExceeded names the time limit", () => {
    const status = diagnose(
      job({ conditions: [{ type: "Failed", status: "True", reason: "DeadlineExceeded" }] }),
      [],
      options,
    );
    expect(status).toEqual({
      state: "failed",
      reason: "DeadlineExceeded",
      message: "The run hit its time limit of 30 minutes.",
    });
  });

  test("a non-zero exit is an error with the exit code", () => {
    const failed = pod({
      phase: "Failed",
      containerStatuses: [
        {
          name: "agent",
          image: "",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 3, reason: "Error" } },
        },
      ],
    });
    expect(
      diagnose(
        job({ conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded" }] }),
        [failed],
        options,
      ),
    ).toEqual({
      state: "failed",
      exitCode: 3,
      reason: "Error",
      message: "The agent exited with code 3.",
    });
  });

  test("image pull back-off fails and names the image; a first ErrImagePull is still pending", () => {
    const waiting = (reason: string) =>
      pod({
        phase: "Pending",
        containerStatuses: [
          {
            name: "agent",
            image: "",
            imageID: "",
            ready: false,
            restartCount: 0,
            state: { waiting: { reason, message: "not found" } },
          },
        ],
      });
    expect(diagnose(job(), [waiting("ImagePullBackOff")], options)).toEqual({
      state: "failed",
      reason: "ImagePullBackOff",
      message: "The agent image ghcr.io/acme/agent:1 could not be pulled (ImagePullBackOff): not found.",
    });
    expect(diagnose(job(), [waiting("ErrImagePull")], options)).toMatchObject({
      state: "pending",
      message: expect.stringContaining("ghcr.io/acme/agent:1"),
    });
  });

  test("unschedulable is pending with the scheduler's message, then failed after the grace period", () => {
    const message = "0/3 nodes are available: 3 Insufficient memory.";
    const at = (t: string) =>
      pod({
        phase: "Pending",
        conditions: [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message,
            lastTransitionTime: new Date(t),
          },
        ],
      });
    expect(diagnose(job(), [at("2026-11-25T11:59:30Z")], options)).toEqual({
      state: "pending",
      message: `The agent pod could not be scheduled: ${message}`,
    });
    expect(diagnose(job(), [at("2026-11-25T11:58:00Z")], options)).toEqual({
      state: "failed",
      reason: "Unschedulable",
      message: `The agent pod could not be scheduled: ${message}`,
    });
  });

  test("formatDuration", () => {
    expect(formatDuration(1800)).toBe("30 minutes");
    expect(formatDuration(60)).toBe("1 minute");
    expect(formatDuration(7200)).toBe("2 hours");
    expect(formatDuration(90)).toBe("90 seconds");
    expect(formatDuration(1)).toBe("1 second");
  });
});
