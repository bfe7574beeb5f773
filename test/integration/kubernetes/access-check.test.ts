// `checkKubernetesAccess` against the emulator's SelfSubjectAccessReview (with injected denials).
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import {
  REQUIRED_PERMISSIONS,
  checkKubernetesAccess,
} from "../../../src/adapters/kubernetes/access-check.js";
import { startKubernetesEmulator, type KubernetesEmulator } from "../../emulators/kubernetes/index.js";

let emulator: KubernetesEmulator;
beforeAll(async () => {
  emulator = await startKubernetesEmulator();
});
afterAll(async () => {
  await emulator.close();
});

test("one ok line per required permission when everything is allowed (from a kubeconfig file)", async () => {
  const lines = await checkKubernetesAccess({ kubeconfig: emulator.kubeconfigPath }, "baton");
  expect(lines).toHaveLength(REQUIRED_PERMISSIONS.length);
  expect(lines.every((l) => l.ok)).toBe(true);
  expect(lines.map((l) => l.line)).toEqual(
    expect.arrayContaining([
      "ok   create jobs.batch in namespace baton",
      "ok   watch jobs.batch in namespace baton",
      "ok   delete jobs.batch in namespace baton",
      "ok   get pods/log in namespace baton",
      "ok   create secrets in namespace baton",
    ]),
  );
  const reviews = emulator.requests().filter((r) => r.path.endsWith("/selfsubjectaccessreviews"));
  expect(
    reviews.map(
      (r) =>
        (r.body as { spec: { resourceAttributes: { namespace: string } } }).spec.resourceAttributes.namespace,
    ),
  ).toEqual(REQUIRED_PERMISSIONS.map(() => "baton"));
});

test("a denied permission is a FAIL line naming it", async () => {
  emulator.inject({ type: "deny", verb: "get", resource: "pods", subresource: "log" });
  const lines = await checkKubernetesAccess(emulator.kubeconfig(), "baton");
  const failed = lines.filter((l) => !l.ok).map((l) => l.line);
  expect(failed).toEqual([
    "FAIL get pods/log in namespace baton: not allowed: denied by the emulator's RBAC",
  ]);
});

test("an unreachable API server gives FAIL lines, not an exception", async () => {
  const gone = await startKubernetesEmulator();
  const kc = gone.kubeconfig();
  await gone.close();
  const lines = await checkKubernetesAccess(kc, "baton");
  expect(lines.every((l) => !l.ok && l.line.includes("cannot ask the API server"))).toBe(true);
});
