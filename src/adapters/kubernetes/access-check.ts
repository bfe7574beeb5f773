// Checks, with SelfSubjectAccessReview, that Baton's identity may do everything the Kubernetes
// executor needs in the agent namespace. One line per permission, for `baton doctor`.
import { AuthorizationV1Api, KubeConfig, type V1SelfSubjectAccessReview } from "@kubernetes/client-node";
import { describeError } from "./errors.js";

export interface KubernetesPermission {
  verb: string;
  /** API group ("" for core). */
  group: string;
  resource: string;
  subresource?: string;
}

/** Everything the executor does: launch, watch, diagnose, cancel (CONTRACT §6). */
export const REQUIRED_PERMISSIONS: readonly KubernetesPermission[] = [
  ...["create", "get", "list", "watch", "delete", "patch"].map((verb) => ({
    verb,
    group: "batch",
    resource: "jobs",
  })),
  ...["get", "list", "watch"].map((verb) => ({ verb, group: "", resource: "pods" })),
  { verb: "get", group: "", resource: "pods", subresource: "log" },
  ...["create", "get", "delete"].map((verb) => ({ verb, group: "", resource: "secrets" })),
];

export interface AccessCheckLine {
  ok: boolean;
  permission: KubernetesPermission;
  /** e.g. `ok   create jobs.batch in namespace baton` or `FAIL get pods/log in namespace baton: denied`. */
  line: string;
}

/** How the Kubernetes connection is configured: a kubeconfig path, in-cluster, or a ready KubeConfig. */
export type KubeConfigSource = { kubeconfig?: string } | KubeConfig;

export function loadKubeConfig(source: KubeConfigSource): KubeConfig {
  if (source instanceof KubeConfig) return source;
  const kc = new KubeConfig();
  if (source.kubeconfig) kc.loadFromFile(source.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

function describe(permission: KubernetesPermission): string {
  const resource = `${permission.resource}${permission.group ? `.${permission.group}` : ""}`;
  return `${permission.verb} ${resource}${permission.subresource ? `/${permission.subresource}` : ""}`;
}

/** Asks the API server about each required permission; never throws for a denial or an unreachable server. */
export async function checkKubernetesAccess(
  source: KubeConfigSource,
  namespace: string,
  permissions: readonly KubernetesPermission[] = REQUIRED_PERMISSIONS,
): Promise<AccessCheckLine[]> {
  let api: AuthorizationV1Api;
  try {
    api = loadKubeConfig(source).makeApiClient(AuthorizationV1Api);
  } catch (error) {
    return permissions.map((permission) => ({
      ok: false,
      permission,
      line: `FAIL ${describe(permission)} in namespace ${namespace}: no Kubernetes configuration (${describeError(error)})`,
    }));
  }
  return await Promise.all(
    permissions.map(async (permission): Promise<AccessCheckLine> => {
      const what = `${describe(permission)} in namespace ${namespace}`;
      const body: V1SelfSubjectAccessReview = {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        spec: {
          resourceAttributes: {
            namespace,
            verb: permission.verb,
            group: permission.group,
            resource: permission.resource,
            ...(permission.subresource ? { subresource: permission.subresource } : {}),
          },
        },
      };
      try {
        const review = await api.createSelfSubjectAccessReview({ body });
        if (review.status?.allowed === true) return { ok: true, permission, line: `ok   ${what}` };
        const reason = review.status?.reason ? `: ${review.status.reason}` : "";
        return { ok: false, permission, line: `FAIL ${what}: not allowed${reason}` };
      } catch (error) {
        return {
          ok: false,
          permission,
          line: `FAIL ${what}: cannot ask the API server (${describeError(error)})`,
        };
      }
    }),
  );
}
