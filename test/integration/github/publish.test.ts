// Publisher against the GitHub emulator: real bare repository, bundles made by real git, octokit over
// HTTP. Push + pull request, refusals (protected path, non-fast-forward), idempotency, follow-ups,
// GitHub 5xx and 422, and no credential in logs or git config files.
import { afterEach, beforeEach, describe, expect, test } from "@jest/globals";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../../src/config/load.js";
import type { Policy } from "../../../src/config/policy.js";
import { createGitPublisher } from "../../../src/adapters/github/git.js";
import { createGitHub, type GitHub } from "../../../src/adapters/github/github.js";
import type { PublishControl } from "../../../src/core/ports/effects.js";
import { headBranchFor, type Task, type TaskId } from "../../../src/core/task.js";
import { createPublisher } from "../../../src/services/publish.js";
import { startGitHubEmulator, type GitHubEmulator } from "../../emulators/github/index.js";
import {
  AgentWorkspace,
  NOW,
  capturedLogger,
  effectRecorder,
  implementResult,
  memoryBundles,
  memoryTaskStore,
  taskReadyToPublish,
  withFollowUp,
} from "./support.js";

const TOKEN = "ghp_testtoken_0123456789abcdefABCDEF";
const REPO = "acme/web";
const POLICY_YAML = `
repos:
  acme/web:
    baseBranch: main
    draft: true
    protectedPaths: [".github/workflows/**"]
`;

interface Harness {
  emulator: GitHubEmulator;
  github: GitHub;
  publisher: PublishControl;
  store: ReturnType<typeof memoryTaskStore>;
  bundles: ReturnType<typeof memoryBundles>;
  effects: ReturnType<typeof effectRecorder>;
  logs: () => string;
  dataDir: string;
  workspaces: AgentWorkspace[];
  newPublisher(): Promise<PublishControl>;
}

let h: Harness;
const cleanups: (() => Promise<void>)[] = [];

async function makePublisher(
  emulator: GitHubEmulator,
  deps: { store: Harness["store"]; bundles: Harness["bundles"]; effects: Harness["effects"] },
  policy: Policy,
  logger: ReturnType<typeof capturedLogger>["logger"],
) {
  const dataDir = await mkdtemp(join(tmpdir(), "baton-publish-data-"));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const github = createGitHub({
    apiUrl: emulator.apiUrl,
    auth: { kind: "token", token: TOKEN },
    clock: { now: () => NOW },
    logger,
    retry: { retries: 3, baseDelayMs: 5 },
    throttle: false,
  });
  const publisher = createPublisher({
    gitHost: github,
    github,
    bundles: deps.bundles,
    store: deps.store,
    effects: deps.effects,
    policy,
    clock: { now: () => NOW },
    logger,
    dataDir,
    permalink: async (channel, ts) => `https://acme.slack.com/archives/${channel}/p${ts.replace(".", "")}`,
    git: createGitPublisher({ dataDir, logger, retryDelayMs: 5 }),
  });
  return { github, publisher, dataDir };
}

beforeEach(async () => {
  const emulator = await startGitHubEmulator({ token: TOKEN });
  cleanups.push(() => emulator.close());
  await emulator.createRepo(REPO, {
    files: {
      "README.md": "# web\n",
      "src/login.ts": "export const redirect = 'loop';\n",
      ".github/workflows/ci.yml": "on: push\n",
    },
  });
  const store = memoryTaskStore();
  const bundles = memoryBundles();
  const effects = effectRecorder();
  const { logger, text } = capturedLogger();
  const policy = parsePolicy(POLICY_YAML);
  const built = await makePublisher(emulator, { store, bundles, effects }, policy, logger);
  h = {
    emulator,
    ...built,
    store,
    bundles,
    effects,
    logs: text,
    workspaces: [],
    newPublisher: async () =>
      (await makePublisher(emulator, { store, bundles, effects }, policy, logger)).publisher,
  };
});

afterEach(async () => {
  for (const ws of h.workspaces) await ws.close();
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function workspace(branch: string, from = "main"): Promise<AgentWorkspace> {
  const ws = await AgentWorkspace.clone(h.emulator.bareRepoPath(REPO), branch, from);
  h.workspaces.push(ws);
  return ws;
}

/** An agent run that changed `files`: its bundle stored, the task saved as ready to publish. */
async function agentRun(id: TaskId, files: Record<string, string>): Promise<Task> {
  const branch = headBranchFor(id);
  const ws = await workspace(branch);
  const sha = await ws.commit(files);
  const result = implementResult(id, { launch: 1, headSha: sha, files: Object.keys(files) });
  await h.bundles.put(result.runId, await ws.bundle(branch, "origin/main"));
  return await h.store.create(taskReadyToPublish(id, result));
}

async function publishLatest(id: TaskId, publisher = h.publisher): Promise<Task> {
  const task = (await h.store.get(id))!;
  const result = task.attemptResults[task.attemptResults.length - 1]!;
  await publisher.publish(task, result.attempt, result.runId);
  return (await h.store.get(id))!;
}

const pullCreates = () =>
  h.emulator.calls().filter((c) => c.route === "POST /repos/{owner}/{repo}/pulls" && c.status === 201);

describe("publisher", () => {
  test("pushes baton/t-… and opens a draft pull request whose body holds the evidence and the requester", async () => {
    const id: TaskId = "T-7F3K2A";
    const task = await agentRun(id, { "src/login.ts": "export const redirect = 'once';\n" });
    const published = await publishLatest(id);

    const headSha = task.attemptResults[0]!.headSha!;
    expect(await h.emulator.branchSha(REPO, "baton/t-7f3k2a")).toBe(headSha);
    const pulls = h.emulator.pulls(REPO);
    expect(pulls).toHaveLength(1);
    const pr = pulls[0]!;
    expect(pr).toMatchObject({ number: 1, head: "baton/t-7f3k2a", base: "main", draft: true, state: "open" });
    expect(pr.title).toBe("T-7F3K2A: Fix the login redirect loop");
    expect(pr.body).toContain("| `npm test` | 0 | 4.2 s |");
    expect(pr.body).toContain(
      "Requested by Ada Lovelace in Slack: https://acme.slack.com/archives/C01CHAN/p1700000000000100",
    );
    expect(pr.body).toContain("- `src/login.ts`");
    expect(pr.body).toContain("Model cost: $0.42 (123,456 tokens)");
    expect(pr.body).toContain("1. Add a failing test\n2. Fix the cookie read");

    expect(published.state).toBe("pr_opened");
    expect(published.pr).toEqual({
      number: 1,
      url: `${h.emulator.gitUrl}/${REPO}/pull/1`,
      headBranch: "baton/t-7f3k2a",
      attempt: 1,
    });
    expect(h.effects.effects).toContainEqual({ type: "post_result" });
  });

  test("publishes when the base branch moved on after the agent cloned it", async () => {
    const id: TaskId = "T-M0VED0";
    const branch = headBranchFor(id);
    const ws = await workspace(branch);
    const sha = await ws.commit({ "src/login.ts": "agent\n" });
    const result = implementResult(id, { launch: 1, headSha: sha, files: ["src/login.ts"] });
    await h.bundles.put(result.runId, await ws.bundle(branch, "origin/main"));
    await h.store.create(taskReadyToPublish(id, result));
    await h.emulator.pushCommit(REPO, "main", { "docs/later.md": "someone else\n" });

    const after = await publishLatest(id);
    expect(after.state).toBe("pr_opened");
    expect(await h.emulator.branchSha(REPO, branch)).toBe(sha);
    expect(h.emulator.pulls(REPO)[0]!.body).toContain("## Files changed (1)\n\n- `src/login.ts`");
  });

  test("a bundle touching .github/workflows/ is refused with the reason and nothing is pushed", async () => {
    const id: TaskId = "T-PR0TEC";
    await agentRun(id, { "src/login.ts": "x\n", ".github/workflows/ci.yml": "on: [push, pull_request]\n" });
    const after = await publishLatest(id);

    expect(after.state).toBe("failed");
    expect(after.failure).toEqual({
      code: "publish_refused",
      message:
        "This change touches .github/workflows/ci.yml, which the policy protects (protectedPaths: .github/workflows/**). Nothing was pushed.",
    });
    expect(await h.emulator.branchSha(REPO, "baton/t-pr0tec")).toBeUndefined();
    expect(h.emulator.pulls(REPO)).toEqual([]);
    expect(h.emulator.calls().filter((c) => c.route.includes("git-receive-pack"))).toEqual([]);
  });

  test("a workflow file changed and changed back in the same bundle is still refused", async () => {
    const id: TaskId = "T-SNEAKY";
    const branch = headBranchFor(id);
    const ws = await workspace(branch);
    await ws.commit({ ".github/workflows/ci.yml": "on: push\njobs: { x: { runs-on: evil } }\n" }, "touch ci");
    const sha = await ws.commit(
      { ".github/workflows/ci.yml": "on: push\n", "src/a.ts": "a\n" },
      "restore ci",
    );
    const result = implementResult(id, { launch: 1, headSha: sha, files: ["src/a.ts"] });
    await h.bundles.put(result.runId, await ws.bundle(branch, "origin/main"));
    await h.store.create(taskReadyToPublish(id, result));

    const after = await publishLatest(id);
    expect(after.failure?.code).toBe("publish_refused");
    expect(after.failure?.message).toContain("touches .github/workflows/ci.yml");
    expect(await h.emulator.branchSha(REPO, branch)).toBeUndefined();
  });

  test("a bundle carrying another branch than baton/* is refused and nothing is pushed", async () => {
    const id: TaskId = "T-MA1N00";
    const ws = await workspace("main");
    const sha = await ws.commit({ "src/login.ts": "straight to main\n" });
    const result = implementResult(id, { launch: 1, headSha: sha, files: ["src/login.ts"] });
    await h.bundles.put(result.runId, await ws.bundle("main", "origin/main"));
    await h.store.create(taskReadyToPublish(id, result));
    const mainBefore = await h.emulator.branchSha(REPO, "main");

    const after = await publishLatest(id);
    expect(after.failure).toEqual({
      code: "publish_refused",
      message:
        "The changes carry refs/heads/main; Baton only publishes baton/* branches. Nothing was pushed.",
    });
    expect(await h.emulator.branchSha(REPO, "main")).toBe(mainBefore);
    expect(await h.emulator.branchSha(REPO, headBranchFor(id))).toBeUndefined();
  });

  test("a head branch outside baton/* is refused", async () => {
    const id: TaskId = "T-N0TBAT";
    const ws = await workspace("feature/x");
    const sha = await ws.commit({ "src/login.ts": "feature\n" });
    const result = implementResult(id, {
      launch: 1,
      headSha: sha,
      files: ["src/login.ts"],
      headBranch: "feature/x",
    });
    await h.bundles.put(result.runId, await ws.bundle("feature/x", "origin/main"));
    await h.store.create(taskReadyToPublish(id, result));

    const after = await publishLatest(id);
    expect(after.failure).toEqual({
      code: "publish_refused",
      message: "Baton only publishes baton/* branches, and feature/x is not one. Nothing was pushed.",
    });
    expect(await h.emulator.branchSha(REPO, "feature/x")).toBeUndefined();
  });

  test("a bundle over the size limit is refused before anything touches GitHub", async () => {
    const id: TaskId = "T-B1GB1G";
    const branch = headBranchFor(id);
    const ws = await workspace(branch);
    const sha = await ws.commit({ "src/big.txt": "x".repeat(10_000) });
    const bundle = await ws.bundle(branch, "origin/main");
    const small = createGitPublisher({
      dataDir: h.dataDir,
      logger: capturedLogger().logger,
      maxBundleBytes: 256,
    });
    const callsBefore = h.emulator.calls().length;
    const push = small.pushBundle({
      repo: REPO,
      remote: await h.github.gitRemote(REPO),
      baseBranch: "main",
      headBranch: branch,
      expectedHeadSha: sha,
      bundle,
      protectedPaths: [],
      runId: "t-b1gb1g-i1-a1",
    });
    await expect(push).rejects.toMatchObject({
      code: "bundle_too_large",
      message: `The changes are too large to publish (${(bundle.length / 1048576).toFixed(1)} MiB, limit 0.0 MiB). Nothing was pushed.`,
    });
    expect(h.emulator.calls().length).toBe(callsBefore);
  });

  test("a second publish of the same run pushes nothing and opens no second pull request", async () => {
    const id: TaskId = "T-TW1CE0";
    await agentRun(id, { "src/login.ts": "once\n" });
    const first = await publishLatest(id);
    const pushesAfterFirst = h.emulator
      .calls()
      .filter((c) => c.route === "POST /{owner}/{repo}.git/git-receive-pack").length;
    expect(pushesAfterFirst).toBe(1);

    // Replay the same effect on the stale task (as a retried job would), and from a second worker.
    const stale = first;
    const result = stale.attemptResults[0]!;
    await h.publisher.publish(stale, 1, result.runId);
    await (await h.newPublisher()).publish(stale, 1, result.runId);

    expect(h.emulator.pulls(REPO)).toHaveLength(1);
    expect(pullCreates()).toHaveLength(1);
    expect(
      h.emulator.calls().filter((c) => c.route === "POST /{owner}/{repo}.git/git-receive-pack"),
    ).toHaveLength(1);
    expect(
      h.emulator.calls().filter((c) => c.route === "PATCH /repos/{owner}/{repo}/pulls/{number}"),
    ).toEqual([]);
    const after = (await h.store.get(id))!;
    expect(after.state).toBe("pr_opened");
    expect(after.pr?.number).toBe(1);
  });

  test("without its bundle a run publishes only if its commit is already on the branch", async () => {
    const id: TaskId = "T-G0NE00";
    const ready = await agentRun(id, { "src/login.ts": "gone\n" });
    const runId = ready.attemptResults[0]!.runId;
    await publishLatest(id);
    await h.bundles.delete(runId);

    // A retried publish after the bundle expired: the branch holds the commit, the PR is found.
    h.store.tasks.set(id, { ...ready, version: h.store.tasks.get(id)!.version });
    const again = await publishLatest(id);
    expect(again.state).toBe("pr_opened");
    expect(again.pr?.number).toBe(1);
    expect(pullCreates()).toHaveLength(1);

    // A run whose bundle is gone and whose commit never reached GitHub cannot be published.
    const other: TaskId = "T-G0NE01";
    const lost = await agentRun(other, { "src/lost.ts": "lost\n" });
    await h.bundles.delete(lost.attemptResults[0]!.runId);
    const failed = await publishLatest(other);
    expect(failed.failure).toEqual({
      code: "publish_refused",
      message: "The agent's changes are no longer available (their git bundle expired). Nothing was pushed.",
    });
    expect(await h.emulator.branchSha(REPO, headBranchFor(other))).toBeUndefined();
  });

  test("a follow-up bundle (fast-forward of the existing head) updates the same pull request", async () => {
    const id: TaskId = "T-F0LL0W";
    const branch = headBranchFor(id);
    const ws = await workspace(branch);
    const firstSha = await ws.commit({ "src/login.ts": "first\n" });
    const first = implementResult(id, { launch: 1, headSha: firstSha, files: ["src/login.ts"] });
    await h.bundles.put(first.runId, await ws.bundle(branch, "origin/main"));
    await h.store.create(taskReadyToPublish(id, first));
    const opened = await publishLatest(id);
    expect(opened.pr?.number).toBe(1);

    // The follow-up run continues the pushed branch and bundles only its new commit.
    const secondSha = await ws.commit({ "src/session.ts": "export const ttl = 5;\n" }, "follow-up");
    const second = implementResult(id, {
      launch: 2,
      headSha: secondSha,
      files: ["src/session.ts"],
      headBranch: branch,
      summary: "Also shorten the session TTL",
    });
    // Like the agent: the bundle holds base..head, i.e. the first commit again plus the new one.
    await h.bundles.put(second.runId, await ws.bundle(branch, "origin/main"));
    await h.store.update(withFollowUp(opened, second));

    const after = await publishLatest(id);
    expect(await h.emulator.branchSha(REPO, branch)).toBe(secondSha);
    const pulls = h.emulator.pulls(REPO);
    expect(pulls).toHaveLength(1);
    expect(pulls[0]!.title).toBe("T-F0LL0W: Fix the login redirect loop");
    expect(pulls[0]!.body).toContain("Also shorten the session TTL");
    expect(pulls[0]!.body).toContain("## Files changed (2)\n\n- `src/login.ts`\n- `src/session.ts`");
    expect(pullCreates()).toHaveLength(1);
    expect(after.state).toBe("pr_opened");
    expect(after.pr).toMatchObject({ number: 1, headBranch: branch });
  });

  test("a bundle that is not a fast-forward of the existing head is refused and the branch stays", async () => {
    const id: TaskId = "T-N0TFF0";
    const branch = headBranchFor(id);
    const ws = await workspace(branch);
    const firstSha = await ws.commit({ "src/login.ts": "first\n" });
    const first = implementResult(id, { launch: 1, headSha: firstSha, files: ["src/login.ts"] });
    await h.bundles.put(first.runId, await ws.bundle(branch, "origin/main"));
    await h.store.create(taskReadyToPublish(id, first));
    const opened = await publishLatest(id);

    // Someone pushes to the branch; the follow-up was built on the old head.
    const theirs = await h.emulator.pushCommit(REPO, branch, { "src/human.ts": "human\n" });
    const secondSha = await ws.commit({ "src/session.ts": "ttl\n" }, "follow-up");
    const second = implementResult(id, {
      launch: 2,
      headSha: secondSha,
      files: ["src/session.ts"],
      headBranch: branch,
    });
    await h.bundles.put(second.runId, await ws.bundle(branch, "origin/main"));
    await h.store.update(withFollowUp(opened, second));

    const after = await publishLatest(id);
    expect(await h.emulator.branchSha(REPO, branch)).toBe(theirs);
    expect(after.state).toBe("pr_opened");
    expect(after.failure).toEqual({
      code: "publish_refused",
      message: `The changes are not a fast-forward of ${branch} (it holds commits the agent did not build on). Nothing was pushed.`,
    });
  });

  test("GitHub 5xx are retried with backoff, then the pull request opens", async () => {
    const id: TaskId = "T-RETRY5";
    await agentRun(id, { "src/login.ts": "retry\n" });
    h.emulator.injectFault({ route: "POST /repos/{owner}/{repo}/pulls", status: 502, times: 2 });
    const after = await publishLatest(id);

    expect(after.state).toBe("pr_opened");
    const creates = h.emulator
      .calls()
      .filter((c) => c.route === "POST /repos/{owner}/{repo}/pulls")
      .map((c) => c.status);
    expect(creates).toEqual([502, 502, 201]);
    expect(h.emulator.pulls(REPO)).toHaveLength(1);
  });

  test("GitHub 5xx that do not stop end in a clear failure after a few tries", async () => {
    const id: TaskId = "T-DOWN50";
    await agentRun(id, { "src/login.ts": "down\n" });
    h.emulator.injectFault({ route: "POST /repos/{owner}/{repo}/pulls", status: 503, times: 100 });
    const after = await publishLatest(id);

    expect(after.state).toBe("failed");
    expect(after.failure?.code).toBe("github_unavailable");
    expect(after.failure?.message).toBe(
      "GitHub did not answer while opening a pull request on acme/web (HTTP 503, after retries); the changes were not published. Retry the task to try again.",
    );
    expect(h.emulator.calls().filter((c) => c.route === "POST /repos/{owner}/{repo}/pulls")).toHaveLength(4);
  });

  test("a push that hits git 5xx is retried", async () => {
    const id: TaskId = "T-GIT5XX";
    await agentRun(id, { "src/login.ts": "git retry\n" });
    h.emulator.injectFault({ route: "POST /{owner}/{repo}.git/git-receive-pack", status: 500, times: 1 });
    const after = await publishLatest(id);
    expect(after.state).toBe("pr_opened");
    expect(await h.emulator.branchSha(REPO, "baton/t-git5xx")).toBe(after.attemptResults[0]!.headSha);
  });

  test("a 422 'already exists' (a stale list, a concurrent publisher) is resolved by finding the pull request", async () => {
    const id: TaskId = "T-DUP422";
    const ready = await agentRun(id, { "src/login.ts": "dup\n" });
    await publishLatest(id);
    expect(h.emulator.pulls(REPO)).toHaveLength(1);

    // A worker that crashed before recording the PR publishes again, and GitHub's list lags once.
    const store = h.store;
    store.tasks.set(id, { ...ready, version: store.tasks.get(id)!.version });
    h.emulator.injectFault({ route: "GET /repos/{owner}/{repo}/pulls", status: 200, times: 1 });
    const after = await publishLatest(id, await h.newPublisher());

    const creates = h.emulator
      .calls()
      .filter((c) => c.route === "POST /repos/{owner}/{repo}/pulls")
      .map((c) => c.status);
    expect(creates).toEqual([201, 422]);
    expect(h.emulator.pulls(REPO)).toHaveLength(1);
    expect(after.state).toBe("pr_opened");
    expect(after.pr?.number).toBe(1);
  });

  test("choosing another attempt closes the previous pull request with one comment", async () => {
    const id: TaskId = "T-CL0SE1";
    const task = await agentRun(id, { "src/login.ts": "close\n" });
    await publishLatest(id);
    const withPr = (await h.store.get(id))!;
    await h.publisher.closePullRequest(withPr, 1);
    await h.publisher.closePullRequest(withPr, 1);
    const pull = h.emulator.pulls(REPO)[0]!;
    expect(pull.state).toBe("closed");
    expect(pull.comments).toEqual([
      `Baton closed this pull request: another attempt of ${task.id} was chosen in Slack.\n\n<!-- baton:closed-by-choice -->`,
    ]);
  });

  test("the credential never appears in logs or in git config files", async () => {
    const id: TaskId = "T-SECRET";
    await agentRun(id, { "src/login.ts": "secret\n" });
    // A failing push too: error paths must not leak it either.
    h.emulator.injectFault({ route: "POST /{owner}/{repo}.git/git-receive-pack", status: 500, times: 10 });
    const failed = await publishLatest(id);
    expect(failed.failure?.code).toBe("github_unavailable");

    const basic = Buffer.from(`x-access-token:${TOKEN}`).toString("base64");
    const logs = h.logs();
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(TOKEN);
    expect(logs).not.toContain(basic);
    expect(JSON.stringify(failed)).not.toContain(TOKEN);
    expect(JSON.stringify(failed)).not.toContain(basic);

    const files = await listFiles(h.dataDir);
    expect(files.some((f) => f.endsWith("/config"))).toBe(true);
    for (const file of files) {
      if ((await stat(file)).size > 1_000_000) continue;
      const content = await readFile(file);
      expect([file, content.includes(TOKEN) || content.includes(basic)]).toEqual([file, false]);
    }
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}
