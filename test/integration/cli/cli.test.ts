// The `baton` command as a user runs it: a real process (the compiled CLI), and `doctor` against
// the Slack, GitHub and model emulators and the test run's Redis.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { loadConfig } from "../../../src/config/load.js";
import { runDoctor } from "../../../src/roles/doctor.js";
import { startSlackEmulator, type SlackEmulator } from "../../emulators/slack/index.js";
import { startGitHubEmulator, type GitHubEmulator } from "../../emulators/github/index.js";
import { startModelEmulator, type ModelEmulator } from "../../emulators/model/index.js";
import { ensureDistBuilt } from "../../support/build.js";
import { testRedisUrl } from "../../support/redis.js";

const ROOT = new URL("../../../", import.meta.url).pathname;

function baton(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [join(ROOT, "bin/baton.js"), ...args], {
    env: { PATH: process.env.PATH, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(async () => {
  await ensureDistBuilt();
}, 120_000);

describe("baton (process)", () => {
  test("--help lists the commands and --version prints the version", () => {
    const help = baton(["--help"]);
    expect(help.code).toBe(0);
    for (const command of ["baton bot", "baton agent", "baton doctor", "--version"])
      expect(help.stdout).toContain(command);
    const version = baton(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  test("bot without Slack variables exits non-zero naming SLACK_BOT_TOKEN, without a stack trace", () => {
    const result = baton(["bot"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("SLACK_BOT_TOKEN");
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test("a bad policy file names the bad key", () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-cli-"));
    const path = join(dir, "policy.yaml");
    writeFileSync(path, "limits:\n  perUsr: 3\n");
    const result = baton(["bot"], {
      SLACK_BOT_TOKEN: "xoxb-1",
      SLACK_SIGNING_SECRET: "12345678",
      BATON_CONFIG: path,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("limits.perUsr: unknown key");
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test("an unknown command or role is refused with usage", () => {
    expect(baton(["deploy"]).code).toBe(2);
    expect(baton(["bot", "--role", "nope"]).stderr).toContain("--role must be all, bot or worker");
  });
});

describe("baton doctor", () => {
  let slack: SlackEmulator;
  let github: GitHubEmulator;
  let model: ModelEmulator;
  beforeAll(async () => {
    slack = await startSlackEmulator();
    github = await startGitHubEmulator({ token: "ghp_doctortoken000000000000000000000000" });
    model = await startModelEmulator({ script: [], apiKey: "sk-doctor-key" });
  });
  afterAll(async () => {
    await Promise.all([slack.close(), github.close(), model.close()]);
  });

  const run = async (overrides: NodeJS.ProcessEnv) => {
    const env = {
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_API_URL: slack.apiUrl,
      REDIS_URL: testRedisUrl(),
      OPENAI_API_KEY: "sk-doctor-key",
      OPENAI_BASE_URL: model.baseUrl,
      GITHUB_TOKEN: "ghp_doctortoken000000000000000000000000",
      GITHUB_API_URL: github.apiUrl,
      BATON_EXECUTOR: "local",
      ...overrides,
    };
    const out = new PassThrough();
    let text = "";
    out.on("data", (chunk: Buffer) => (text += chunk.toString()));
    const code = await runDoctor(loadConfig(env, "doctor"), out);
    return { code, text };
  };

  test("prints one ok line per check when everything answers", async () => {
    const { code, text } = await run({});
    expect(text).toMatch(/^ok {3}slack .*auth\.test ok/m);
    expect(text).toMatch(/^ok {3}redis .*noeviction/m);
    expect(text).toMatch(/^ok {3}model /m);
    expect(text).toMatch(/^ok {3}github .*authenticated as/m);
    expect(text).toContain("All checks passed.");
    expect(code).toBe(0);
  });

  test("fails, line by line, on a wrong Slack token, an unreachable Redis and a wrong model key — without echoing secrets", async () => {
    const { code, text } = await run({
      SLACK_BOT_TOKEN: "xoxb-wrong-token-value",
      REDIS_URL: "redis://127.0.0.1:1",
      OPENAI_API_KEY: "sk-wrong-key-value",
    });
    expect(code).toBe(1);
    expect(text).toMatch(/^FAIL slack /m);
    expect(text).toMatch(/^FAIL redis /m);
    expect(text).toMatch(/^FAIL model .*401/m);
    expect(text).not.toContain("xoxb-wrong-token-value");
    expect(text).not.toContain("sk-wrong-key-value");
  }, 30_000);
});
