// The environment (CONTRACT §2): the only schema for process.env. Values are validated here once.
import { z } from "zod";

const url = (what: string) => z.string().url(`${what} must be a URL`);
const emptyToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
const opt = <T extends z.ZodType>(schema: T) => z.preprocess(emptyToUndefined, schema.optional());

export const DEFAULT_MODEL = "gpt-5-codex";
export const DEFAULT_AGENT_IMAGE = "ghcr.io/baton-dev/baton-agent:0.1.0";

export const Env = z.object({
  SLACK_BOT_TOKEN: opt(z.string().regex(/^xoxb-/, "must be a bot token starting with xoxb-")),
  SLACK_SIGNING_SECRET: opt(z.string().min(8, "must be the app's signing secret")),
  SLACK_APP_TOKEN: opt(z.string().regex(/^xapp-/, "must be an app-level token starting with xapp-")),
  SLACK_API_URL: opt(url("SLACK_API_URL").refine((v) => v.endsWith("/api/"), "must end with /api/")),
  PORT: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(65535).default(3000)),
  HOST: z.preprocess(emptyToUndefined, z.string().default("0.0.0.0")),
  REDIS_URL: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
      .default("redis://127.0.0.1:6379"),
  ),
  OPENAI_API_KEY: opt(z.string().min(1)),
  OPENAI_BASE_URL: z.preprocess(
    emptyToUndefined,
    url("OPENAI_BASE_URL").default("https://api.openai.com/v1"),
  ),
  BATON_MODEL: z.preprocess(emptyToUndefined, z.string().default(DEFAULT_MODEL)),
  GITHUB_TOKEN: opt(z.string().min(1)),
  GITHUB_APP_ID: opt(z.string().regex(/^\d+$/, "must be the numeric GitHub App id")),
  GITHUB_APP_PRIVATE_KEY: opt(z.string().includes("PRIVATE KEY", { message: "must be a PEM private key" })),
  GITHUB_APP_PRIVATE_KEY_PATH: opt(z.string().min(1)),
  GITHUB_API_URL: z.preprocess(emptyToUndefined, url("GITHUB_API_URL").default("https://api.github.com")),
  BATON_EXECUTOR: opt(z.enum(["local", "kubernetes"])),
  KUBECONFIG: opt(z.string().min(1)),
  KUBERNETES_SERVICE_HOST: opt(z.string()),
  BATON_K8S_NAMESPACE: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a Kubernetes namespace name")
      .default("baton"),
  ),
  BATON_AGENT_IMAGE: z.preprocess(emptyToUndefined, z.string().default(DEFAULT_AGENT_IMAGE)),
  BATON_RUNNER_URL: opt(url("BATON_RUNNER_URL")),
  BATON_CONFIG: opt(z.string().min(1)),
  BATON_DATA_DIR: opt(z.string().min(1)),
  /** Handed to locally executed agents so they find git, node and the repository's toolchains. */
  PATH: z.preprocess(emptyToUndefined, z.string().default("/usr/local/bin:/usr/bin:/bin")),
  LOG_LEVEL: z.preprocess(
    emptyToUndefined,
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  ),
});
export type Env = z.infer<typeof Env>;

/** Names of variables whose values are secrets: redacted everywhere, never passed to agents. */
export const SECRET_ENV_NAMES = [
  "SLACK_BOT_TOKEN",
  "SLACK_SIGNING_SECRET",
  "SLACK_APP_TOKEN",
  "OPENAI_API_KEY",
  "GITHUB_TOKEN",
  "GITHUB_APP_PRIVATE_KEY",
] as const;
