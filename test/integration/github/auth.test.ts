// GitHub credentials against the emulator: GitHub App installation tokens minted per repository with
// only contents + pull requests, cached until shortly before expiry; the static token; git remotes.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "@jest/globals";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, parsePolicy } from "../../../src/config/load.js";
import { createGitHubFromConfig } from "../../../src/adapters/github/index.js";
import { GitHubAccessError } from "../../../src/adapters/github/errors.js";
import { createGitPublisher } from "../../../src/adapters/github/git.js";
import { createGitHub } from "../../../src/adapters/github/github.js";
import { headBranchFor, type TaskId } from "../../../src/core/task.js";
import { createPublisher } from "../../../src/services/publish.js";
import { silentLogger } from "../../../src/shared/logger.js";
import { startGitHubEmulator, type GitHubEmulator } from "../../emulators/github/index.js";
import {
  AgentWorkspace,
  effectRecorder,
  implementResult,
  memoryBundles,
  memoryTaskStore,
  taskReadyToPublish,
} from "./support.js";

const APP_ID = "424242";
const INSTALLATION_ID = 777;
const TOKEN = "ghp_static_token_for_tests_0123456789";

function rsaKey(): string {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  }).privateKey;
}

let emulator: GitHubEmulator;
const privateKey = rsaKey();
/** One clock for Baton and the emulator, so a test can move time past a token's refresh point. */
const clock = { value: new Date() };

beforeEach(() => {
  clock.value = new Date();
});

beforeAll(async () => {
  emulator = await startGitHubEmulator({
    token: TOKEN,
    app: { appId: APP_ID, privateKeyPem: privateKey, installationId: INSTALLATION_ID },
    now: () => clock.value,
  });
  await emulator.createRepo("acme/web");
  await emulator.createRepo("acme/other");
});

afterAll(async () => {
  await emulator.close();
});

function appGitHub(now: { value: Date } = clock, key = privateKey) {
  return createGitHub({
    apiUrl: emulator.apiUrl,
    auth: { kind: "app", appId: APP_ID, privateKey: key },
    clock: { now: () => now.value },
    logger: silentLogger(),
    retry: { retries: 2, baseDelayMs: 5 },
    throttle: false,
  });
}

const tokenFromRemote = (authorization: string) =>
  Buffer.from(authorization.replace(/^Basic /, ""), "base64")
    .toString("utf8")
    .replace(/^x-access-token:/, "");

async function restStatus(path: string, token: string): Promise<number> {
  const res = await fetch(`${emulator.apiUrl}${path}`, { headers: { authorization: `token ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

describe("GitHub App authentication", () => {
  test("mints an installation token restricted to the one repository, with contents and pull requests only", async () => {
    const before = emulator.mintedTokens().length;
    const github = appGitHub();
    const remote = await github.gitRemote("acme/web");

    expect(remote.url).toBe(`${emulator.gitUrl}/acme/web.git`);
    expect(remote.authorization).toMatch(/^Basic [A-Za-z0-9+/=]+$/);
    const minted = emulator.mintedTokens().slice(before);
    expect(minted).toHaveLength(1);
    expect(minted[0]).toMatchObject({
      installationId: INSTALLATION_ID,
      repositories: ["web"],
      permissions: { contents: "write", pull_requests: "write" },
    });
    const token = tokenFromRemote(remote.authorization);
    expect(token).toBe(minted[0]!.token);

    // The installation was found with an app JWT, and the token opens only this repository.
    expect(emulator.calls()).toContainEqual(
      expect.objectContaining({ route: "GET /repos/{owner}/{repo}/installation", auth: "jwt", status: 200 }),
    );
    expect(await restStatus("/repos/acme/web", token)).toBe(200);
    expect(await restStatus("/repos/acme/other", token)).toBe(404);
  });

  test("caches the token until shortly before it expires, and mints once for concurrent callers", async () => {
    const now = clock;
    const github = appGitHub(now);
    const before = emulator.mintedTokens().length;
    const remotes = await Promise.all([1, 2, 3, 4, 5].map(() => github.gitRemote("acme/web")));
    expect(new Set(remotes.map((r) => r.authorization)).size).toBe(1);
    expect(emulator.mintedTokens().length - before).toBe(1);

    now.value = new Date(now.value.getTime() + 50 * 60_000);
    await github.gitRemote("acme/web");
    expect(emulator.mintedTokens().length - before).toBe(1);

    // Less than five minutes before expiry (tokens live an hour): a fresh one.
    now.value = new Date(now.value.getTime() + 6 * 60_000);
    const fresh = await github.gitRemote("acme/web");
    expect(emulator.mintedTokens().length - before).toBe(2);
    expect(fresh.authorization).not.toBe(remotes[0]!.authorization);

    // Another repository gets its own token.
    await github.gitRemote("acme/other");
    expect(emulator.mintedTokens().slice(-1)[0]!.repositories).toEqual(["other"]);
  });

  test("identifies the app for doctor, and a wrong key is an access error", async () => {
    expect(await appGitHub().whoAmI()).toBe("baton-test");
    const wrong = appGitHub(clock, rsaKey());
    await expect(wrong.gitRemote("acme/web")).rejects.toBeInstanceOf(GitHubAccessError);
    await expect(wrong.repoInfo("acme/web")).resolves.toBeUndefined();
  });

  test("publishes with the installation token: push and pull request", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "baton-publish-app-"));
    const id: TaskId = "T-APPAUT";
    const branch = headBranchFor(id);
    const ws = await AgentWorkspace.clone(emulator.bareRepoPath("acme/web"), branch, "main");
    try {
      const github = appGitHub();
      const store = memoryTaskStore();
      const bundles = memoryBundles();
      const sha = await ws.commit({ "src/app.ts": "export const app = true;\n" });
      const result = implementResult(id, { launch: 1, headSha: sha, files: ["src/app.ts"] });
      await bundles.put(result.runId, await ws.bundle(branch, "origin/main"));
      // No display name stored on the task: the publisher asks Slack for it.
      const task = await store.create({ ...taskReadyToPublish(id, result), requester: { userId: "U01AAA" } });
      const publisher = createPublisher({
        gitHost: github,
        github,
        bundles,
        store,
        effects: effectRecorder(),
        policy: parsePolicy("repos:\n  acme/web:\n    draft: false\n"),
        clock: { now: () => new Date() },
        logger: silentLogger(),
        dataDir,
        userName: async (userId) => (userId === "U01AAA" ? "Grace Hopper" : undefined),
        git: createGitPublisher({ dataDir, logger: silentLogger(), retryDelayMs: 5 }),
      });
      await publisher.publish(task, 1, result.runId);

      const after = (await store.get(id))!;
      expect(after.state).toBe("pr_opened");
      expect(await emulator.branchSha("acme/web", branch)).toBe(sha);
      const pull = emulator.pulls("acme/web").find((p) => p.head === branch)!;
      expect(pull.draft).toBe(false);
      expect(pull.body).toContain("Requested by Grace Hopper in Slack.");
      const pushes = emulator.calls().filter((c) => c.route === "POST /{owner}/{repo}.git/git-receive-pack");
      expect(pushes.map((c) => c.auth)).toEqual(["installation"]);
    } finally {
      await ws.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe("token authentication", () => {
  test("reads the repository, identifies the user and builds a Basic git credential", async () => {
    const github = createGitHub({
      apiUrl: emulator.apiUrl,
      auth: { kind: "token", token: TOKEN },
      clock: { now: () => new Date() },
      logger: silentLogger(),
      throttle: false,
    });
    expect(await github.repoInfo("acme/web")).toEqual({
      fullName: "acme/web",
      defaultBranch: "main",
      private: true,
    });
    expect(await github.repoInfo("acme/missing")).toBeUndefined();
    expect(await github.whoAmI()).toBe("baton-bot");
    const remote = await github.gitRemote("acme/web");
    expect(remote).toEqual({
      url: `${emulator.gitUrl}/acme/web.git`,
      authorization: `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString("base64")}`,
    });
    expect(github.gitHostUrl).toBe(emulator.gitUrl);
  });

  test("a bad token is an access error, not a missing repository crash", async () => {
    const github = createGitHub({
      apiUrl: emulator.apiUrl,
      auth: { kind: "token", token: "ghp_wrong" },
      clock: { now: () => new Date() },
      logger: silentLogger(),
      throttle: false,
    });
    await expect(github.whoAmI()).rejects.toBeInstanceOf(GitHubAccessError);
    await expect(github.findOpenPullRequest("acme/web", "baton/t-000000")).rejects.toBeInstanceOf(
      GitHubAccessError,
    );
  });
});

describe("createGitHubFromConfig", () => {
  test("builds the adapter from the environment: token, GitHub App, or none", async () => {
    const deps = { clock: { now: () => clock.value }, logger: silentLogger() };
    const withToken = loadConfig({ GITHUB_TOKEN: TOKEN, GITHUB_API_URL: emulator.apiUrl }, "worker");
    expect(await createGitHubFromConfig(withToken, deps)!.whoAmI()).toBe("baton-bot");

    const withApp = loadConfig(
      { GITHUB_APP_ID: APP_ID, GITHUB_APP_PRIVATE_KEY: privateKey, GITHUB_API_URL: emulator.apiUrl },
      "worker",
    );
    const app = createGitHubFromConfig(withApp, deps)!;
    expect(await app.whoAmI()).toBe("baton-test");
    expect((await app.gitRemote("acme/web")).url).toBe(`${emulator.gitUrl}/acme/web.git`);

    expect(createGitHubFromConfig(loadConfig({}, "worker"), deps)).toBeUndefined();
  });
});
