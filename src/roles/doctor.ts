// `baton doctor`: checks configuration and every dependency, one line per check; exit 1 if any fails.
// Checks: policy file, Slack auth.test, Redis (reachable, noeviction), Kubernetes permissions (for
// the Kubernetes executor), the model endpoint, GitHub auth.
import type { Writable } from "node:stream";
import type { Config } from "../config/load.js";
import { createRedactor } from "../core/redact.js";
import { createMetrics } from "../adapters/metrics/metrics.js";
import { checkEvictionPolicy, connectRedis, waitForRedis } from "../adapters/redis/connection.js";
import { createSlackChat } from "../adapters/slack/chat.js";
import { createGitHubFromConfig } from "../adapters/github/index.js";
import { checkKubernetesAccess } from "../adapters/kubernetes/access-check.js";
import { silentLogger } from "../shared/logger.js";

export interface DoctorLine {
  ok: boolean;
  /** "warn" lines do not fail the run (e.g. optional dependencies not configured). */
  warn?: boolean;
  name: string;
  detail: string;
}

type Check = () => Promise<DoctorLine[]>;

const TIMEOUT_MS = 10_000;

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} did not answer within ${TIMEOUT_MS / 1000} s`)),
          TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function doctorChecks(config: Config): Check[] {
  const redact = createRedactor(config.secrets);
  const logger = silentLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const message = (error: unknown) => redact((error as Error)?.message ?? String(error));

  const policy: Check = async () => [
    {
      ok: true,
      name: "config",
      detail: config.policyPath
        ? `policy file ${config.policyPath}: ${Object.keys(config.policy.channels).length} channel(s), ${Object.keys(config.policy.repos).length} repo(s)`
        : "no policy file (BATON_CONFIG unset): everyone may request work, no channel defaults",
    },
  ];

  const slack: Check = async () => {
    if (!config.slack.botToken) {
      return [{ ok: false, name: "slack", detail: "SLACK_BOT_TOKEN is not set" }];
    }
    try {
      const chat = createSlackChat({
        token: config.slack.botToken,
        ...(config.slack.apiUrl ? { apiUrl: config.slack.apiUrl } : {}),
        logger,
        metrics,
        redact,
        timeoutMs: TIMEOUT_MS,
      });
      const me = await withTimeout(chat.whoAmI(), "Slack");
      const lines: DoctorLine[] = [
        {
          ok: true,
          name: "slack",
          detail: `auth.test ok: bot user ${me.userId}${me.teamId ? ` in team ${me.teamId}` : ""}`,
        },
      ];
      if (!config.slack.socketMode && !config.slack.signingSecret) {
        lines.push({ ok: false, name: "slack", detail: "SLACK_SIGNING_SECRET is required for HTTP mode" });
      }
      return lines;
    } catch (error) {
      return [{ ok: false, name: "slack", detail: `auth.test failed: ${message(error)}` }];
    }
  };

  const redis: Check = async () => {
    const client = connectRedis(config.redisUrl, { connectionName: "baton-doctor", once: true });
    client.on("error", () => undefined);
    try {
      await waitForRedis(client, TIMEOUT_MS);
      const eviction = await checkEvictionPolicy(client);
      return [
        { ok: true, name: "redis", detail: `reachable at ${redact(config.redisUrl)}` },
        { ok: eviction.ok, name: "redis", detail: eviction.message },
      ];
    } catch (error) {
      return [{ ok: false, name: "redis", detail: `${redact(config.redisUrl)}: ${message(error)}` }];
    } finally {
      client.disconnect();
    }
  };

  const kubernetes: Check = async () => {
    if (config.executor !== "kubernetes") {
      return [
        {
          ok: true,
          name: "kubernetes",
          detail: "local executor: agents run as local processes (no cluster needed)",
        },
      ];
    }
    const lines = await withTimeout(
      checkKubernetesAccess(
        config.kubernetes.kubeconfig ? { kubeconfig: config.kubernetes.kubeconfig } : {},
        config.kubernetes.namespace,
      ),
      "the Kubernetes API server",
    ).catch((error: unknown) => [{ ok: false, line: `cannot reach the API server: ${message(error)}` }]);
    return lines.map((l) => ({ ok: l.ok, name: "kubernetes", detail: l.line.replace(/^(ok|FAIL)\s+/, "") }));
  };

  const model: Check = async () => {
    if (!config.model.apiKey) {
      return [{ ok: false, name: "model", detail: "OPENAI_API_KEY is not set: agents cannot call a model" }];
    }
    try {
      const url = `${config.model.baseUrl.replace(/\/+$/, "")}/models`;
      const response = await withTimeout(
        fetch(url, { headers: { authorization: `Bearer ${config.model.apiKey}` } }),
        "the model endpoint",
      );
      if (!response.ok) {
        return [
          {
            ok: false,
            name: "model",
            detail: `${config.model.baseUrl}: GET /models answered ${response.status}`,
          },
        ];
      }
      return [
        { ok: true, name: "model", detail: `${config.model.baseUrl} answers; model ${config.model.name}` },
      ];
    } catch (error) {
      return [{ ok: false, name: "model", detail: `${config.model.baseUrl}: ${message(error)}` }];
    }
  };

  const github: Check = async () => {
    const client = createGitHubFromConfig(config, { clock: { now: () => new Date() }, logger });
    if (!client) {
      return [
        {
          ok: false,
          name: "github",
          detail: "no GitHub credential: set GITHUB_TOKEN or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY",
        },
      ];
    }
    try {
      const who = await withTimeout(client.whoAmI(), "GitHub");
      return [{ ok: true, name: "github", detail: `${config.githubApiUrl}: authenticated as ${who}` }];
    } catch (error) {
      return [{ ok: false, name: "github", detail: `${config.githubApiUrl}: ${message(error)}` }];
    }
  };

  return [policy, slack, redis, kubernetes, model, github];
}

export async function runDoctor(config: Config, out: Writable): Promise<number> {
  const results = await Promise.all(doctorChecks(config).map((check) => check()));
  let failed = 0;
  for (const line of results.flat()) {
    if (!line.ok) failed += 1;
    out.write(`${line.ok ? "ok  " : "FAIL"} ${line.name.padEnd(10)} ${line.detail}\n`);
  }
  out.write(failed === 0 ? "All checks passed.\n" : `${failed} check(s) failed.\n`);
  return failed === 0 ? 0 : 1;
}
