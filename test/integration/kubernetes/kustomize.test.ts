// Renders the k8s/ kustomize base with `kubectl kustomize` and validates what a cluster would get:
// kinds, namespaces, the executor's RBAC, probes, security contexts, the agent NetworkPolicy,
// Redis persistence settings, and the policy file against Baton's own schema.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "@jest/globals";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";
import { parsePolicy } from "../../../src/config/load.js";
import { REQUIRED_PERMISSIONS } from "../../../src/adapters/kubernetes/access-check.js";

const K8S_DIR = fileURLToPath(new URL("../../../k8s", import.meta.url));
const kubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
const haveKubectl = kubectl.status === 0;
if (!haveKubectl) {
  console.warn(
    "kustomize.test.ts: kubectl is not installed; skipping the rendering checks of k8s/ (CI installs kubectl).",
  );
}

const Meta = z.object({
  name: z.string().min(1),
  namespace: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
});
const Obj = z.object({ apiVersion: z.string(), kind: z.string(), metadata: Meta }).passthrough();

const HttpProbe = z
  .object({ httpGet: z.object({ path: z.string(), port: z.union([z.string(), z.number()]) }) })
  .passthrough();
const ExecProbe = z.object({ exec: z.object({ command: z.array(z.string()).min(1) }) }).passthrough();
const RestrictedContainerSecurity = z.object({
  allowPrivilegeEscalation: z.literal(false),
  readOnlyRootFilesystem: z.literal(true),
  runAsNonRoot: z.literal(true),
  capabilities: z.object({ drop: z.tuple([z.literal("ALL")]) }),
});
const RestrictedPodSecurity = z.object({
  runAsNonRoot: z.literal(true),
  seccompProfile: z.object({ type: z.literal("RuntimeDefault") }),
});
const Resources = z.object({
  requests: z.object({ cpu: z.string(), memory: z.string() }),
  limits: z.object({ cpu: z.string(), memory: z.string() }),
});

const BotDeployment = z.object({
  kind: z.literal("Deployment"),
  metadata: Meta.extend({ namespace: z.literal("baton") }),
  spec: z.object({
    replicas: z.literal(2),
    template: z.object({
      spec: z.object({
        serviceAccountName: z.literal("baton"),
        securityContext: RestrictedPodSecurity,
        containers: z
          .array(
            z.object({
              image: z.string().regex(/^ghcr\.io\/baton-dev\/baton:/),
              args: z.tuple([z.literal("bot")]),
              envFrom: z.array(z.object({ secretRef: z.object({ name: z.literal("baton") }) })).length(1),
              env: z.array(z.object({ name: z.string(), value: z.string() })),
              readinessProbe: HttpProbe.refine(
                (p) => p.httpGet.path === "/readyz",
                "readiness probes /readyz",
              ),
              livenessProbe: HttpProbe.refine(
                (p) => p.httpGet.path === "/healthz",
                "liveness probes /healthz",
              ),
              resources: Resources,
              securityContext: RestrictedContainerSecurity,
              volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string() })),
            }),
          )
          .length(1),
      }),
    }),
  }),
});

const RedisStatefulSet = z.object({
  kind: z.literal("StatefulSet"),
  spec: z.object({
    template: z.object({
      spec: z.object({
        securityContext: RestrictedPodSecurity,
        containers: z
          .array(
            z.object({
              args: z.array(z.string()),
              readinessProbe: ExecProbe,
              livenessProbe: ExecProbe,
              resources: Resources,
              securityContext: RestrictedContainerSecurity,
              volumeMounts: z.array(z.object({ name: z.literal("data"), mountPath: z.literal("/data") })),
            }),
          )
          .length(1),
      }),
    }),
    volumeClaimTemplates: z.array(z.object({ metadata: z.object({ name: z.literal("data") }) })).length(1),
  }),
});

const Role = z.object({
  kind: z.literal("Role"),
  metadata: Meta.extend({ namespace: z.literal("baton-agents") }),
  rules: z.array(
    z.object({ apiGroups: z.array(z.string()), resources: z.array(z.string()), verbs: z.array(z.string()) }),
  ),
});

function render(): z.infer<typeof Obj>[] {
  const text = execFileSync("kubectl", ["kustomize", K8S_DIR], { encoding: "utf8" });
  return parseAllDocuments(text).map((doc) => Obj.parse(doc.toJS()));
}

function argValue(args: string[], flag: string): string | undefined {
  const index = args.indexOf(flag);
  return index >= 0 ? args[index + 1] : undefined;
}

(haveKubectl ? describe : describe.skip)("kubectl kustomize k8s/", () => {
  const objects = haveKubectl ? render() : [];
  const find = (kind: string, name?: string) =>
    objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

  test("renders every object the deployment needs, each in the right namespace", () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? "-"}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        "ConfigMap/baton/baton-policy",
        "Deployment/baton/baton",
        "Namespace/-/baton",
        "Namespace/-/baton-agents",
        "NetworkPolicy/baton-agents/baton-agents",
        "NetworkPolicy/baton/baton-redis",
        "PodDisruptionBudget/baton/baton",
        "ResourceQuota/baton-agents/baton-agents",
        "Role/baton-agents/baton-executor",
        "RoleBinding/baton-agents/baton-executor",
        "Service/baton/baton",
        "Service/baton/baton-redis",
        "ServiceAccount/baton-agents/default",
        "ServiceAccount/baton/baton",
        "StatefulSet/baton/baton-redis",
      ].sort(),
    );
    // No credential is ever rendered from the base.
    expect(find("Secret")).toEqual([]);
  });

  test("the bot Deployment: 2 replicas, probes, restricted security, env wired to the agent namespace and Redis", () => {
    const deployment = BotDeployment.parse(find("Deployment", "baton")[0]);
    const container = deployment.spec.template.spec.containers[0]!;
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      BATON_EXECUTOR: "kubernetes",
      BATON_K8S_NAMESPACE: "baton-agents",
      BATON_RUNNER_URL: "http://baton.baton.svc.cluster.local:3000",
      REDIS_URL: "redis://baton-redis.baton.svc.cluster.local:6379",
      BATON_CONFIG: "/etc/baton/policy.yaml",
      PORT: "3000",
    });
    // readOnlyRootFilesystem: every path Baton writes is a volume.
    expect(container.volumeMounts.map((m) => m.mountPath).sort()).toEqual(
      ["/etc/baton", "/tmp", env["BATON_DATA_DIR"]].sort(),
    );
  });

  test("the Role grants exactly what the executor needs, only in the agent namespace", () => {
    const role = Role.parse(find("Role")[0]);
    const granted = new Set(
      role.rules.flatMap((rule) =>
        rule.apiGroups.flatMap((g) => rule.resources.flatMap((r) => rule.verbs.map((v) => `${g}|${r}|${v}`))),
      ),
    );
    const needed = new Set(
      REQUIRED_PERMISSIONS.map(
        (p) => `${p.group}|${p.resource}${p.subresource ? `/${p.subresource}` : ""}|${p.verb}`,
      ),
    );
    expect([...granted].sort()).toEqual([...needed].sort());
    const binding = find("RoleBinding")[0] as unknown as {
      subjects: { kind: string; name: string; namespace: string }[];
      roleRef: { name: string };
    };
    expect(binding.roleRef.name).toBe("baton-executor");
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "baton", namespace: "baton" }]);
    expect(find("ClusterRole")).toEqual([]);
    expect(find("ClusterRoleBinding")).toEqual([]);
  });

  test("agent pods may talk only to the bot's port and DNS", () => {
    const policy = find("NetworkPolicy", "baton-agents")[0] as unknown as {
      spec: {
        podSelector: { matchLabels: Record<string, string> };
        policyTypes: string[];
        ingress: unknown[];
        egress: { to: unknown[]; ports: { protocol: string; port: number }[] }[];
      };
    };
    expect(policy.spec.podSelector.matchLabels).toEqual({
      "app.kubernetes.io/name": "baton",
      "app.kubernetes.io/component": "agent",
    });
    expect(policy.spec.policyTypes.sort()).toEqual(["Egress", "Ingress"]);
    expect(policy.spec.ingress).toEqual([]);
    expect(policy.spec.egress.map((rule) => rule.ports)).toEqual([
      [{ protocol: "TCP", port: 3000 }],
      [
        { protocol: "UDP", port: 53 },
        { protocol: "TCP", port: 53 },
      ],
    ]);
    expect(JSON.stringify(policy.spec.egress[0]?.to)).toContain('"app.kubernetes.io/component":"bot"');
  });

  test("Redis runs with AOF and noeviction on a persistent volume", () => {
    const redis = RedisStatefulSet.parse(find("StatefulSet", "baton-redis")[0]);
    const args = redis.spec.template.spec.containers[0]!.args;
    expect(args[0]).toBe("redis-server");
    expect(argValue(args, "--appendonly")).toBe("yes");
    expect(argValue(args, "--maxmemory-policy")).toBe("noeviction");
    expect(argValue(args, "--dir")).toBe("/data");
  });

  test("the agent namespace has a ResourceQuota and the bot a PodDisruptionBudget", () => {
    const quota = find("ResourceQuota")[0] as unknown as { spec: { hard: Record<string, string> } };
    expect(Object.keys(quota.spec.hard)).toEqual(
      expect.arrayContaining(["pods", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"]),
    );
    const pdb = find("PodDisruptionBudget")[0] as unknown as {
      spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } };
    };
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual({
      "app.kubernetes.io/name": "baton",
      "app.kubernetes.io/component": "bot",
    });
  });

  test("the policy ConfigMap is a valid policy file", () => {
    const configMap = find("ConfigMap", "baton-policy")[0] as unknown as { data: Record<string, string> };
    const policy = parsePolicy(configMap.data["policy.yaml"] ?? "", "k8s/policy-configmap.yaml");
    expect(policy.limits.concurrentRuns).toBe(10);
  });
});

test("secret.example.yaml holds placeholders only and names the Secret the Deployment reads", () => {
  const example = parseYaml(readFileSync(`${K8S_DIR}/secret.example.yaml`, "utf8")) as {
    kind: string;
    metadata: { name: string; namespace: string };
    stringData: Record<string, string>;
  };
  expect(example.kind).toBe("Secret");
  expect(example.metadata).toMatchObject({ name: "baton", namespace: "baton" });
  for (const value of Object.values(example.stringData)) expect(value).toContain("REPLACE-ME");
  const kustomization = readFileSync(`${K8S_DIR}/kustomization.yaml`, "utf8");
  expect(kustomization).not.toMatch(/^\s*-\s*secret\.example\.yaml/m);
});
