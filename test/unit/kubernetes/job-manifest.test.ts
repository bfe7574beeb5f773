// The pure Job/Secret builder against CONTRACT §6, and the Job name rules (DNS-1123, ≤ 63, deterministic).
import { describe, expect, test } from "@jest/globals";
import {
  buildAgentJob,
  jobNameFor,
  labelValueFor,
  ownedSecret,
  type AgentJobInput,
} from "../../../src/adapters/kubernetes/job-manifest.js";
import { expectContractJob, expectContractSecret } from "../../emulators/kubernetes/contract-checks.js";

const input: AgentJobInput = {
  namespace: "baton",
  runId: "t-7f3k2a-p1-a1",
  taskId: "T-7F3K2A",
  phase: "plan",
  attempt: 1,
  repo: "acme/web",
  image: "ghcr.io/acme/baton-agent-web:1",
  runnerUrl: "http://baton.baton.svc:3000",
  runToken: "run-token-secret-value-123",
  timeoutSeconds: 1800,
};
const run = { ...input };

describe("jobNameFor", () => {
  test("is baton-<run id> for ordinary run ids", () => {
    expect(jobNameFor("t-7f3k2a-p1-a1")).toBe("baton-t-7f3k2a-p1-a1");
  });

  test("is deterministic, a DNS-1123 label and at most 63 characters for any run id", () => {
    const ids = [
      "T-7F3K2A-I2-A1",
      "x".repeat(200),
      "weird_id/with:chars..",
      "-leading-and-trailing-",
      "a".repeat(58),
    ];
    const names = ids.map(jobNameFor);
    for (const [i, name] of names.entries()) {
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name.startsWith("baton-")).toBe(true);
      expect(jobNameFor(ids[i] as string)).toBe(name);
    }
    expect(new Set(names).size).toBe(ids.length);
  });

  test("distinct long run ids sharing a prefix get distinct names", () => {
    const a = jobNameFor(`${"r".repeat(80)}-a`);
    const b = jobNameFor(`${"r".repeat(80)}-b`);
    expect(a).not.toBe(b);
  });

  test("upper-case ids do not collide with their lower-case twin", () => {
    expect(jobNameFor("T-ABC")).not.toBe(jobNameFor("t-abc"));
  });
});

describe("labelValueFor", () => {
  test("lower-cases ids", () => {
    expect(labelValueFor("T-7F3K2A")).toBe("t-7f3k2a");
  });
  test("keeps over-long values valid", () => {
    const value = labelValueFor("y".repeat(100));
    expect(value.length).toBeLessThanOrEqual(63);
    expect(value).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });
});

describe("buildAgentJob", () => {
  test("satisfies CONTRACT §6 field by field", () => {
    const { job, secret } = buildAgentJob(input);
    expectContractJob(job, run);
    expectContractSecret(secret, run, "baton-t-7f3k2a-p1-a1");
  });

  test("creates the Job suspended so the Secret's ownerReference exists before the pod starts", () => {
    const { job } = buildAgentJob(input);
    expect(job.spec?.suspend).toBe(true);
  });

  test("uses the documented default resources and honours overrides", () => {
    const container = buildAgentJob(input).job.spec?.template.spec?.containers[0];
    expect(container?.resources).toEqual({
      requests: { cpu: "1", memory: "2Gi" },
      limits: { cpu: "2", memory: "2Gi" },
    });
    const custom = buildAgentJob({
      ...input,
      resources: { requests: { cpu: "500m", memory: "1Gi" }, limits: { cpu: "4", memory: "8Gi" } },
      ttlSecondsAfterFinished: 120,
    });
    expect(custom.job.spec?.template.spec?.containers[0]?.resources).toEqual({
      requests: { cpu: "500m", memory: "1Gi" },
      limits: { cpu: "4", memory: "8Gi" },
    });
    expect(custom.job.spec?.ttlSecondsAfterFinished).toBe(120);
  });

  test("the environment is exactly runner URL, token reference and HOME", () => {
    const env = buildAgentJob(input).job.spec?.template.spec?.containers[0]?.env;
    expect(env).toEqual([
      { name: "BATON_RUNNER_URL", value: "http://baton.baton.svc:3000" },
      {
        name: "BATON_RUN_TOKEN",
        valueFrom: { secretKeyRef: { name: "baton-t-7f3k2a-p1-a1", key: "token", optional: false } },
      },
      { name: "HOME", value: "/workspace" },
    ]);
  });

  test("is pure: the same input gives the same objects", () => {
    expect(buildAgentJob(input)).toEqual(buildAgentJob(input));
  });

  test("refuses bad input with every problem named", () => {
    expect(() =>
      buildAgentJob({ ...input, namespace: "Bad_NS", timeoutSeconds: 0, runnerUrl: "nope" }),
    ).toThrow(/namespace .*DNS-1123.*timeoutSeconds must be a positive integer.*runnerUrl is not a URL/);
  });

  test("ownedSecret adds the Job as owner without touching the token", () => {
    const { secret } = buildAgentJob(input);
    const owned = ownedSecret(secret, { name: "baton-t-7f3k2a-p1-a1", uid: "1234-uid" });
    expectContractSecret(owned, run, "baton-t-7f3k2a-p1-a1", "1234-uid");
    expect(owned.metadata?.ownerReferences?.[0]).toEqual({
      apiVersion: "batch/v1",
      kind: "Job",
      name: "baton-t-7f3k2a-p1-a1",
      uid: "1234-uid",
      controller: true,
      blockOwnerDeletion: false,
    });
    expect(secret.metadata?.ownerReferences).toBeUndefined();
  });
});
