// apply_patch against the fixture table in test/fixtures/apply-patch/<case>/: `input/` is copied to a
// temporary workspace, `patch.txt` applied; the tree must equal `expected/`, or the error must
// contain `error.txt` and the tree must be left exactly as `input/` (all or nothing).
import { describe, expect, test } from "@jest/globals";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PatchError, applyPatch, parsePatch } from "../../../src/agent/tools/apply-patch.js";

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../fixtures/apply-patch");

function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else out[path.relative(root, full).split(path.sep).join("/")] = readFileSync(full, "utf8");
    }
  };
  walk(root);
  return out;
}

function workspaceFrom(input: string): { root: string; ws: string } {
  const root = mkdtempSync(path.join(tmpdir(), "baton-patch-"));
  const ws = path.join(root, "ws");
  cpSync(input, ws, { recursive: true });
  return { root, ws };
}

const cases = readdirSync(FIXTURES).sort();

describe("apply_patch fixtures", () => {
  test("the table has success and failure cases", () => {
    expect(cases.filter((c) => existsSync(path.join(FIXTURES, c, "expected"))).length).toBeGreaterThanOrEqual(
      8,
    );
    expect(
      cases.filter((c) => existsSync(path.join(FIXTURES, c, "error.txt"))).length,
    ).toBeGreaterThanOrEqual(8);
  });

  test.each(cases)("%s", (name) => {
    const dir = path.join(FIXTURES, name);
    const { root, ws } = workspaceFrom(path.join(dir, "input"));
    try {
      const patch = readFileSync(path.join(dir, "patch.txt"), "utf8");
      const errorFile = path.join(dir, "error.txt");
      if (existsSync(errorFile)) {
        const expected = readFileSync(errorFile, "utf8").replace(/\n$/, "");
        let caught: unknown;
        try {
          applyPatch(ws, patch);
        } catch (error) {
          caught = error;
        }
        expect(caught).toBeInstanceOf(PatchError);
        expect((caught as Error).message).toContain(expected);
        expect(tree(ws)).toEqual(tree(path.join(dir, "input")));
        // Nothing was written outside the workspace either.
        expect(readdirSync(root)).toEqual(["ws"]);
      } else {
        applyPatch(ws, patch);
        expect(tree(ws)).toEqual(tree(path.join(dir, "expected")));
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("apply_patch beyond the table", () => {
  test("CRLF files keep their line endings", () => {
    const root = mkdtempSync(path.join(tmpdir(), "baton-patch-"));
    try {
      writeFileSync(path.join(root, "w.txt"), "a\r\nb\r\nc\r\n");
      const outcome = applyPatch(
        root,
        "*** Begin Patch\n*** Update File: w.txt\n a\n-b\n+B\n c\n*** End Patch",
      );
      expect(readFileSync(path.join(root, "w.txt"), "utf8")).toBe("a\r\nB\r\nc\r\n");
      expect(outcome).toEqual({ changed: ["w.txt"], summary: ["M w.txt"] });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a symlink cannot lead a write outside the workspace, and .git is off limits", () => {
    const root = mkdtempSync(path.join(tmpdir(), "baton-patch-"));
    try {
      const ws = path.join(root, "ws");
      mkdirSync(path.join(ws, ".git"), { recursive: true });
      mkdirSync(path.join(root, "outside"));
      symlinkSync(path.join(root, "outside"), path.join(ws, "link"));
      expect(() => applyPatch(ws, "*** Begin Patch\n*** Add File: link/evil.txt\n+x\n*** End Patch")).toThrow(
        "through a symlink",
      );
      expect(() =>
        applyPatch(ws, "*** Begin Patch\n*** Add File: .git/hooks/pre-commit\n+x\n*** End Patch"),
      ).toThrow("refusing to write inside .git");
      expect(readdirSync(path.join(root, "outside"))).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("the parser reports structure precisely", () => {
    expect(
      parsePatch(
        "\n*** Begin Patch\n*** Update File: a\n@@ ctx\n x\n-y\n+z\n*** End of File\n*** End Patch\n\n",
      ),
    ).toEqual([
      {
        kind: "update",
        path: "a",
        moveTo: null,
        chunks: [
          {
            context: "ctx",
            oldLines: ["x", "y"],
            newLines: ["x", "z"],
            ops: [
              { op: " ", text: "x" },
              { op: "-", text: "y" },
              { op: "+", text: "z" },
            ],
            endOfFile: true,
          },
        ],
      },
    ]);
    expect(() => parsePatch("*** Begin Patch\n*** End Patch")).toThrow("no file operations");
    expect(() => parsePatch("*** Begin Patch\n*** Update File: a\n*** End Patch")).toThrow("has no changes");
    expect(() => parsePatch("*** Begin Patch\n*** Add File: a\nno plus\n*** End Patch")).toThrow(
      "must start with '+'",
    );
  });
});
