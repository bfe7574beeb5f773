import { describe, expect, test } from "@jest/globals";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig, parsePolicy } from "../../../src/config/load.js";

const BOT_ENV = { SLACK_BOT_TOKEN: "xoxb-123-abc", SLACK_SIGNING_SECRET: "s3cr3t-signing" };

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("environment", () => {
  test("the bot without Slack variables names both of them", () => {
    const problems = problemsOf(() => loadConfig({}, "bot"));
    expect(problems).toEqual([
      expect.stringMatching(/^SLACK_BOT_TOKEN: required/),
      expect.stringMatching(/^SLACK_SIGNING_SECRET: required unless SLACK_APP_TOKEN/),
    ]);
  });

  test("Socket Mode needs no signing secret", () => {
    const config = loadConfig({ SLACK_BOT_TOKEN: "xoxb-1", SLACK_APP_TOKEN: "xapp-1" }, "bot");
    expect(config.slack.socketMode).toBe(true);
  });

  test("every bad variable is named with what is expected, and no secret value is echoed", () => {
    const problems = problemsOf(() =>
      loadConfig(
        {
          SLACK_BOT_TOKEN: "not-a-token-SECRETVALUE",
          SLACK_SIGNING_SECRET: "s3cr3t-signing",
          PORT: "http",
          REDIS_URL: "localhost:6379",
          BATON_EXECUTOR: "docker",
          SLACK_API_URL: "http://127.0.0.1:1/api",
        },
        "bot",
      ),
    );
    const text = problems.join("\n");
    for (const name of ["SLACK_BOT_TOKEN", "PORT", "REDIS_URL", "BATON_EXECUTOR", "SLACK_API_URL"]) {
      expect(text).toContain(`${name}:`);
    }
    expect(text).not.toContain("SECRETVALUE");
  });

  test("defaults follow the contract", () => {
    const config = loadConfig(BOT_ENV, "bot");
    expect(config.http).toEqual({ port: 3000, host: "0.0.0.0" });
    expect(config.redisUrl).toBe("redis://127.0.0.1:6379");
    expect(config.executor).toBe("local");
    expect(config.kubernetes.namespace).toBe("baton");
    expect(config.runnerUrl).toBe("http://127.0.0.1:3000");
    expect(config.githubApiUrl).toBe("https://api.github.com");
    expect(config.github).toBeUndefined();
    expect(config.secrets).toEqual(expect.arrayContaining(["xoxb-123-abc", "s3cr3t-signing"]));
  });

  test("the Kubernetes executor is the default with KUBECONFIG or in a cluster", () => {
    expect(loadConfig({ ...BOT_ENV, KUBECONFIG: "/k" }, "bot").executor).toBe("kubernetes");
    expect(loadConfig({ ...BOT_ENV, KUBERNETES_SERVICE_HOST: "10.0.0.1" }, "bot").executor).toBe(
      "kubernetes",
    );
    expect(loadConfig({ ...BOT_ENV, KUBECONFIG: "/k", BATON_EXECUTOR: "local" }, "bot").executor).toBe(
      "local",
    );
  });

  test("a GitHub App needs its key; a token is enough otherwise", () => {
    expect(problemsOf(() => loadConfig({ ...BOT_ENV, GITHUB_APP_ID: "12" }, "bot"))).toEqual([
      expect.stringMatching(/^GITHUB_APP_PRIVATE_KEY: required with GITHUB_APP_ID/),
    ]);
    expect(loadConfig({ ...BOT_ENV, GITHUB_TOKEN: "ghp_x" }, "bot").github).toMatchObject({ kind: "token" });
  });
});

describe("policy file", () => {
  test("the contract's example parses, with defaults for absent limits", () => {
    const policy = parsePolicy(`
access: { users: [U01AAA], approvers: [U01CCC], admins: [U01CCC] }
channels:
  C01CHAN: { repo: acme/web, mode: plan, watch: true, budgetUsdPerDay: 25 }
repos:
  acme/web: { image: "ghcr.io/acme/a:1", baseBranch: main, draft: true, protectedPaths: [".github/workflows/**"] }
limits: { concurrentRuns: 10, perUser: 3 }
models:
  prices: { "gpt-5-codex": { inputPerMTok: 1.25, outputPerMTok: 10 } }
`);
    expect(policy.channels.C01CHAN?.repo).toBe("acme/web");
    expect(policy.limits).toMatchObject({
      concurrentRuns: 10,
      perRepo: 5,
      maxAttempts: 4,
      runTimeoutMinutes: 30,
    });
  });

  test("unknown keys and bad values are named by their path", () => {
    const problems = problemsOf(() =>
      parsePolicy(
        "limits:\n  perUsr: 3\n  maxAttempts: 9\nchannels:\n  C01:\n    mode: yolo\nextra: 1\n",
        "BATON_CONFIG",
      ),
    );
    const text = problems.join("\n");
    expect(text).toContain("limits.perUsr: unknown key");
    expect(text).toContain("limits.maxAttempts");
    expect(text).toContain("channels.C01.mode");
    expect(text).toContain("extra: unknown key");
  });

  test("invalid YAML and a missing file are reported, not thrown raw", () => {
    expect(problemsOf(() => parsePolicy("a: [1,", "BATON_CONFIG"))[0]).toMatch(/not valid YAML/);
    expect(problemsOf(() => loadConfig({ ...BOT_ENV, BATON_CONFIG: "/nope/policy.yaml" }, "bot"))).toEqual([
      "BATON_CONFIG: file not found: /nope/policy.yaml",
    ]);
  });

  test("loadConfig reads the file named by BATON_CONFIG", () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-policy-"));
    const path = join(dir, "policy.yaml");
    writeFileSync(path, "access:\n  admins: [U01ADMIN]\n");
    expect(loadConfig({ ...BOT_ENV, BATON_CONFIG: path }, "bot").policy.access.admins).toEqual(["U01ADMIN"]);
  });
});
