// Pure parts of publishing: git host URL from GITHUB_API_URL, repository names, bundle headers,
// protected-path sentences (dot files included).
import { describe, expect, test } from "@jest/globals";
import {
  parseBundleHeader,
  protectedRefusal,
  PublishRefusedError,
} from "../../../src/adapters/github/git.js";
import { gitHostUrlFromApiUrl, parseRepo } from "../../../src/adapters/github/urls.js";

describe("gitHostUrlFromApiUrl", () => {
  test.each([
    ["https://api.github.com", "https://github.com"],
    ["https://api.github.com/", "https://github.com"],
    ["https://ghe.example/api/v3", "https://ghe.example"],
    ["https://ghe.example/api/v3/", "https://ghe.example"],
    ["https://ghe.example:8443/api/v3", "https://ghe.example:8443"],
    ["https://api.acme.ghe.com", "https://acme.ghe.com"],
    ["http://127.0.0.1:4010/api/v3", "http://127.0.0.1:4010"],
  ])("%s -> %s", (api, host) => {
    expect(gitHostUrlFromApiUrl(api)).toBe(host);
  });

  test("refuses credentials in the URL", () => {
    expect(() => gitHostUrlFromApiUrl("https://user:secret@ghe.example/api/v3")).toThrow(
      "must not contain credentials",
    );
  });
});

describe("parseRepo", () => {
  test("accepts owner/name and rejects paths that could escape", () => {
    expect(parseRepo("acme/web.js")).toEqual({ owner: "acme", name: "web.js", fullName: "acme/web.js" });
    for (const bad of ["acme", "acme/web/x", "../web", "acme/..", "acme/.", "-acme/web", "acme/we b"]) {
      expect(() => parseRepo(bad)).toThrow("not a repository name");
    }
  });
});

describe("parseBundleHeader", () => {
  const a = "a".repeat(40);
  const b = "b".repeat(40);
  test("reads prerequisites and refs of v2 and v3 bundles", () => {
    const v2 = Buffer.from(`# v2 git bundle\n-${a} base commit\n${b} refs/heads/baton/t-abc123\n\nPACK...`);
    expect(parseBundleHeader(v2)).toEqual({
      version: 2,
      prerequisites: [a],
      refs: [{ sha: b, name: "refs/heads/baton/t-abc123" }],
    });
    const v3 = Buffer.from(`# v3 git bundle\n@object-format=sha1\n${b} HEAD\n\nPACK`);
    expect(parseBundleHeader(v3).refs).toEqual([{ sha: b, name: "HEAD" }]);
  });

  test("refuses what is not a bundle, or a partial one", () => {
    for (const bad of [
      "hello",
      `# v2 git bundle\n\n`,
      `# v2 git bundle\nnot-a-sha refs/heads/x\n\n`,
      `# v3 git bundle\n@filter=blob:none\n${b} HEAD\n\n`,
    ]) {
      expect(() => parseBundleHeader(Buffer.from(bad))).toThrow(PublishRefusedError);
    }
  });
});

describe("protectedRefusal", () => {
  test("matches dot folders and names every matching pattern", () => {
    expect(protectedRefusal(["src/a.ts"], [".github/workflows/**"])).toBeUndefined();
    expect(
      protectedRefusal([".github/workflows/ci.yml", "src/a.ts"], [".github/workflows/**", "infra/**"]),
    ).toBe(
      "This change touches .github/workflows/ci.yml, which the policy protects (protectedPaths: .github/workflows/**). Nothing was pushed.",
    );
    expect(protectedRefusal([".env", "a/.secrets/key", "b.txt"], ["**/.env", "**/.secrets/**"])).toBe(
      "This change touches .env and a/.secrets/key, which the policy protects (protectedPaths: **/.env, **/.secrets/**). Nothing was pushed.",
    );
    const many = ["infra/a", "infra/b", "infra/c", "infra/d", "infra/e"];
    expect(protectedRefusal(many, ["infra/**"])).toBe(
      "This change touches infra/a, infra/b, infra/c and 2 more, which the policy protects (protectedPaths: infra/**). Nothing was pushed.",
    );
    expect(protectedRefusal([".github/workflows/ci.yml"], [])).toBeUndefined();
  });
});
