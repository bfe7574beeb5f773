// The GitHub emulator behaves like GitHub where Baton relies on it: token checks on REST and git,
// clone over smart HTTP, 422s for an unpushed head and a duplicate pull request, injected faults.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGitHubEmulator, type GitHubEmulator } from "../../emulators/github/index.js";
import { git } from "./support.js";

const TOKEN = "ghp_emulator_test_token_0123456789";
let emulator: GitHubEmulator;
let dir: string;

beforeAll(async () => {
  emulator = await startGitHubEmulator({ token: TOKEN });
  await emulator.createRepo("acme/web", { files: { "a.txt": "a\n" }, defaultBranch: "trunk" });
  dir = await mkdtemp(join(tmpdir(), "baton-emu-test-"));
});

afterAll(async () => {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

async function api(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
  const res = await fetch(`${emulator.apiUrl}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `token ${token}` } : {}),
      ...(body ? { "content-type": "application/json" } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const basic = (token: string) =>
  `http.extraHeader=Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString("base64")}`;

describe("GitHub emulator", () => {
  test("REST needs a valid token", async () => {
    expect((await api("GET", "/repos/acme/web", undefined, null)).status).toBe(401);
    expect((await api("GET", "/repos/acme/web", undefined, "ghp_wrong")).status).toBe(401);
    const ok = await api("GET", "/repos/acme/web");
    expect(ok).toEqual({
      status: 200,
      json: { full_name: "acme/web", name: "web", default_branch: "trunk", private: true },
    });
    expect((await api("GET", "/repos/acme/nope")).status).toBe(404);
  });

  test("clones and pushes over smart HTTP with the token as Basic password, refuses without it", async () => {
    const url = `${emulator.gitUrl}/acme/web.git`;
    await expect(git(["-c", "credential.helper=", "ls-remote", url], dir)).rejects.toThrow(
      /could not read Username/,
    );
    const clone = join(dir, "clone");
    await git(["-c", basic(TOKEN), "clone", "--quiet", url, clone], dir);
    await git(["checkout", "--quiet", "-b", "feature"], clone);
    await git(["commit", "--quiet", "--allow-empty", "-m", "empty"], clone);
    await git(["-c", basic(TOKEN), "push", "--quiet", url, "feature"], clone);
    expect(await emulator.branchSha("acme/web", "feature")).toBe(
      (await git(["rev-parse", "HEAD"], clone)).trim(),
    );
  });

  test("refuses a pull request for an unpushed head and a second one for the same head", async () => {
    const unpushed = await api("POST", "/repos/acme/web/pulls", { title: "x", head: "nope", base: "trunk" });
    expect(unpushed).toEqual({
      status: 422,
      json: expect.objectContaining({
        message: "Validation Failed",
        errors: [{ resource: "PullRequest", code: "invalid", field: "head" }],
      }),
    });
    await emulator.pushCommit("acme/web", "baton/t-abc123", { "b.txt": "b\n" }, "trunk");
    const first = await api("POST", "/repos/acme/web/pulls", {
      title: "x",
      head: "acme:baton/t-abc123",
      base: "trunk",
    });
    expect(first.status).toBe(201);
    const second = await api("POST", "/repos/acme/web/pulls", {
      title: "y",
      head: "baton/t-abc123",
      base: "trunk",
    });
    expect(second).toEqual({
      status: 422,
      json: expect.objectContaining({
        errors: [
          {
            resource: "PullRequest",
            code: "custom",
            message: "A pull request already exists for acme:baton/t-abc123.",
          },
        ],
      }),
    });
    const listed = await fetch(`${emulator.apiUrl}/repos/acme/web/pulls?head=acme:baton/t-abc123`, {
      headers: { authorization: `token ${TOKEN}` },
    });
    expect(((await listed.json()) as unknown[]).length).toBe(1);
  });

  test("injected faults answer the given status the given number of times", async () => {
    emulator.injectFault({ route: "GET /repos/{owner}/{repo}", status: 502, times: 2 });
    expect((await api("GET", "/repos/acme/web")).status).toBe(502);
    expect((await api("GET", "/repos/acme/web")).status).toBe(502);
    expect((await api("GET", "/repos/acme/web")).status).toBe(200);
  });
});
