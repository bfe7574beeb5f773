// Loads and validates configuration: the environment and the policy file. Errors name every bad
// variable or key and what is expected; they carry no stack trace and never echo a secret's value.
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { DEFAULT_POLICY, Policy } from "./policy.js";
import { Env, SECRET_ENV_NAMES } from "./env.js";

export type Role = "bot" | "worker" | "agent" | "doctor";

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

export interface GitHubAuthConfig {
  kind: "token" | "app";
  token?: string;
  appId?: string;
  privateKey?: string;
}

export interface Config {
  env: Env;
  policy: Policy;
  policyPath?: string;
  slack: {
    botToken?: string;
    signingSecret?: string;
    appToken?: string;
    apiUrl?: string;
    socketMode: boolean;
  };
  http: { port: number; host: string };
  redisUrl: string;
  model: { apiKey?: string; baseUrl: string; name: string };
  github?: GitHubAuthConfig & { apiUrl: string };
  githubApiUrl: string;
  executor: "local" | "kubernetes";
  kubernetes: { namespace: string; kubeconfig?: string; agentImage: string };
  runnerUrl: string;
  dataDir: string;
  /** PATH for locally executed agents. */
  agentPath: string;
  logLevel: Env["LOG_LEVEL"];
  /** The literal values of every secret this process holds (for redaction). */
  secrets: string[];
}

function formatIssues(prefix: string, error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    const where = path === "" ? prefix : prefix === "" ? path : `${prefix}.${path}`;
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => `${where === "" ? k : `${where}.${k}`}: unknown key`).join("\n");
    }
    return `${where}: ${issue.message}`;
  });
}

/** Parses a policy file's text; problems name the bad key (e.g. `limits.perUsr: unknown key`). */
export function parsePolicy(text: string, source = "BATON_CONFIG"): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (error) {
    throw new ConfigError([`${source}: not valid YAML (${(error as Error).message.split("\n")[0]})`]);
  }
  const parsed = Policy.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      formatIssues("", parsed.error)
        .flatMap((p) => p.split("\n"))
        .map((p) => `${source} ${p}`),
    );
  }
  return parsed.data;
}

export function loadPolicyFile(path: string): Policy {
  if (!existsSync(path)) throw new ConfigError([`BATON_CONFIG: file not found: ${path}`]);
  return parsePolicy(readFileSync(path, "utf8"), `BATON_CONFIG (${path})`);
}

/**
 * Validates the environment for a role. `bot` needs Slack credentials; `worker` and `bot` need a
 * GitHub credential only to publish (checked by doctor and at publish time, not here).
 */
export function loadConfig(source: NodeJS.ProcessEnv, role: Role): Config {
  const problems: string[] = [];
  const parsed = Env.safeParse(source);
  if (!parsed.success) problems.push(...formatIssues("", parsed.error));
  const env = parsed.success ? parsed.data : undefined;

  if (env && role === "bot") {
    if (!env.SLACK_BOT_TOKEN) problems.push("SLACK_BOT_TOKEN: required to run the bot (a bot token xoxb-…)");
    if (!env.SLACK_APP_TOKEN && !env.SLACK_SIGNING_SECRET) {
      problems.push("SLACK_SIGNING_SECRET: required unless SLACK_APP_TOKEN is set (Socket Mode)");
    }
  }
  if (env && (env.GITHUB_APP_ID || env.GITHUB_APP_PRIVATE_KEY || env.GITHUB_APP_PRIVATE_KEY_PATH)) {
    if (!env.GITHUB_APP_ID) problems.push("GITHUB_APP_ID: required when a GitHub App private key is set");
    if (env.GITHUB_APP_ID && !env.GITHUB_APP_PRIVATE_KEY && !env.GITHUB_APP_PRIVATE_KEY_PATH) {
      problems.push(
        "GITHUB_APP_PRIVATE_KEY: required with GITHUB_APP_ID (or set GITHUB_APP_PRIVATE_KEY_PATH)",
      );
    }
  }

  let policy = DEFAULT_POLICY;
  if (env?.BATON_CONFIG) {
    try {
      policy = loadPolicyFile(env.BATON_CONFIG);
    } catch (error) {
      if (error instanceof ConfigError) problems.push(...error.problems);
      else throw error;
    }
  }

  let privateKey = env?.GITHUB_APP_PRIVATE_KEY;
  if (env?.GITHUB_APP_PRIVATE_KEY_PATH && !privateKey) {
    try {
      privateKey = readFileSync(env.GITHUB_APP_PRIVATE_KEY_PATH, "utf8");
    } catch {
      problems.push(`GITHUB_APP_PRIVATE_KEY_PATH: cannot read ${env.GITHUB_APP_PRIVATE_KEY_PATH}`);
    }
  }

  if (problems.length > 0 || !env) throw new ConfigError(problems);

  const inCluster = Boolean(env.KUBERNETES_SERVICE_HOST);
  const executor = env.BATON_EXECUTOR ?? (inCluster || env.KUBECONFIG ? "kubernetes" : "local");
  const github: Config["github"] = env.GITHUB_APP_ID
    ? {
        kind: "app",
        appId: env.GITHUB_APP_ID,
        ...(privateKey ? { privateKey } : {}),
        apiUrl: env.GITHUB_API_URL,
      }
    : env.GITHUB_TOKEN
      ? { kind: "token", token: env.GITHUB_TOKEN, apiUrl: env.GITHUB_API_URL }
      : undefined;

  const secrets = SECRET_ENV_NAMES.map((name) => env[name]).filter((v): v is string => typeof v === "string");
  if (privateKey && !secrets.includes(privateKey)) secrets.push(privateKey);

  return {
    env,
    policy,
    ...(env.BATON_CONFIG ? { policyPath: env.BATON_CONFIG } : {}),
    slack: {
      ...(env.SLACK_BOT_TOKEN ? { botToken: env.SLACK_BOT_TOKEN } : {}),
      ...(env.SLACK_SIGNING_SECRET ? { signingSecret: env.SLACK_SIGNING_SECRET } : {}),
      ...(env.SLACK_APP_TOKEN ? { appToken: env.SLACK_APP_TOKEN } : {}),
      ...(env.SLACK_API_URL ? { apiUrl: env.SLACK_API_URL } : {}),
      socketMode: Boolean(env.SLACK_APP_TOKEN),
    },
    http: { port: env.PORT, host: env.HOST },
    redisUrl: env.REDIS_URL,
    model: {
      ...(env.OPENAI_API_KEY ? { apiKey: env.OPENAI_API_KEY } : {}),
      baseUrl: env.OPENAI_BASE_URL,
      name: env.BATON_MODEL,
    },
    ...(github ? { github } : {}),
    githubApiUrl: env.GITHUB_API_URL,
    executor,
    kubernetes: {
      namespace: env.BATON_K8S_NAMESPACE,
      ...(env.KUBECONFIG ? { kubeconfig: env.KUBECONFIG } : {}),
      agentImage: env.BATON_AGENT_IMAGE,
    },
    runnerUrl: env.BATON_RUNNER_URL ?? `http://127.0.0.1:${env.PORT}`,
    dataDir: env.BATON_DATA_DIR ?? join(tmpdir(), "baton"),
    agentPath: env.PATH,
    logLevel: env.LOG_LEVEL,
    secrets,
  };
}
