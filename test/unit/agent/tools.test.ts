// The tools other than apply_patch, run directly against a temporary workspace: the shell's
// environment, timeout and output bounds, read_file and search limits, and argument validation.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { toolEnvironment } from "../../../src/agent/safe-env.js";
import { callTool, toolSpecs, toolsForPhase, type ToolHost } from "../../../src/agent/tools/index.js";
import { validateChatRequest } from "../../emulators/model/index.js";

let root: string;
let ws: string;
const recorded: { argv: string[]; exitCode: number | null; timedOut: boolean; outputTail: string }[] = [];
const plans: unknown[] = [];

function host(overrides: Partial<ToolHost> = {}): ToolHost {
  return {
    workspace: ws,
    outputDir: path.join(ws, ".git", "baton-output"),
    env: toolEnvironment({
      PATH: process.env.PATH,
      HOME: ws,
      BATON_RUN_TOKEN: "secret-token-value",
      AWS_SECRET_ACCESS_KEY: "aws-secret",
    }),
    signal: new AbortController().signal,
    remainingMs: () => 60_000,
    commandFinished: (entry) => recorded.push(entry),
    filesChanged: () => undefined,
    planUpdated: (steps) => plans.push(steps),
    ...overrides,
  };
}

const implementTools = toolsForPhase("implement");

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), "baton-tools-"));
  ws = path.join(root, "ws");
  mkdirSync(path.join(ws, ".git"), { recursive: true });
  mkdirSync(path.join(ws, "src"));
  writeFileSync(path.join(ws, "src", "a.ts"), "export const needle = 1;\nexport const other = 2;\n");
  writeFileSync(
    path.join(ws, "big.txt"),
    Array.from({ length: 5000 }, (_v, i) => `line ${i + 1} ${"x".repeat(40)}`).join("\n") + "\n",
  );
  writeFileSync(path.join(root, "secret.txt"), "outside\n");
  symlinkSync(path.join(root, "secret.txt"), path.join(ws, "leak.txt"));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("tool environment", () => {
  test("is an allow-list: no BATON_*, no secrets, CI=1", () => {
    const env = toolEnvironment({
      PATH: "/bin",
      HOME: "/h",
      BATON_RUN_TOKEN: "t",
      OPENAI_API_KEY: "k",
      GITHUB_TOKEN: "g",
      HTTPS_PROXY: "http://user:pw@proxy:3128",
      NO_PROXY: "localhost",
    });
    expect(env).toEqual({
      PATH: "/bin",
      HOME: "/h",
      LANG: "C.UTF-8",
      NO_PROXY: "localhost",
      TERM: "dumb",
      CI: "1",
      NO_COLOR: "1",
      PAGER: "cat",
      GIT_PAGER: "cat",
      GIT_TERMINAL_PROMPT: "0",
    });
  });
});

describe("shell", () => {
  test("runs an argv in the workspace, records evidence, and hides the agent's secrets", async () => {
    const result = await callTool(implementTools, "shell", JSON.stringify({ command: ["env"] }), host());
    expect(result.isError).toBe(false);
    expect(result.output).toMatch(
      /^exit code 0 after \d+\.\d s; full output \(\d+ bytes\) in \.git\/baton-output\/cmd-\d+-\d+\.log\n/,
    );
    expect(result.output).not.toContain("secret-token-value");
    expect(result.output).not.toContain("aws-secret");
    expect(recorded[recorded.length - 1]).toMatchObject({ argv: ["env"], exitCode: 0, timedOut: false });
  });

  test("a timeout kills the whole process group and says so", async () => {
    const pidFile = path.join(root, "bg.pid");
    const started = Date.now();
    const result = await callTool(
      implementTools,
      "shell",
      JSON.stringify({
        command: ["sh", "-c", `sleep 30 & echo $! > ${pidFile}; echo started; wait`],
        timeout_ms: 300,
      }),
      host(),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(result.output).toContain("timed out after 300 ms; the process group was killed");
    expect(result.output).toContain("started");
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    expect(pid).toBeGreaterThan(1);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 5_000;
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive()).toBe(false);
    expect(recorded[recorded.length - 1]).toMatchObject({ exitCode: null, timedOut: true });
  });

  test("output beyond 10 KiB is cut to head and tail with the bytes left out; the file keeps all", async () => {
    const result = await callTool(
      implementTools,
      "shell",
      JSON.stringify({
        command: ["sh", "-c", "echo START; head -c 200000 /dev/zero | tr '\\000' b; echo; echo END"],
      }),
      host(),
    );
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(10 * 1024);
    expect(result.output).toMatch(/\nSTART\nb+\n\[… \d+ bytes left out …\]\nb+\nEND\n$/);
    const file = /in (\.git\/baton-output\/\S+\.log)/.exec(result.output)![1]!;
    expect(readFileSync(path.join(ws, file)).length).toBe(6 + 200000 + 1 + 4);
  });

  test("a missing program and a bad workdir are tool errors", async () => {
    const missing = await callTool(
      implementTools,
      "shell",
      JSON.stringify({ command: ["no-such-program-xyz"] }),
      host(),
    );
    expect(missing).toMatchObject({
      isError: true,
      output: expect.stringContaining("command not found: no-such-program-xyz"),
    });
    expect(recorded[recorded.length - 1]).toMatchObject({ argv: ["no-such-program-xyz"], exitCode: 127 });
    const escape = await callTool(
      implementTools,
      "shell",
      JSON.stringify({ command: ["ls"], workdir: "../.." }),
      host(),
    );
    expect(escape).toEqual({ isError: true, output: "path escapes the workspace: ../.." });
  });
});

describe("read_file and search", () => {
  test("read_file shows a range and stops at 10 KiB with where to continue", async () => {
    const range = await callTool(
      implementTools,
      "read_file",
      JSON.stringify({ path: "src/a.ts", start_line: 2, end_line: 2 }),
      host(),
    );
    expect(range.output).toBe("src/a.ts: lines 2-2 of 2\nexport const other = 2;");
    const big = await callTool(implementTools, "read_file", JSON.stringify({ path: "big.txt" }), host());
    expect(Buffer.byteLength(big.output)).toBeLessThanOrEqual(10 * 1024);
    expect(big.output).toMatch(/^big\.txt: lines 1-(\d+) of 5000\n/);
    const next = Number(/continue with start_line=(\d+)/.exec(big.output)![1]);
    expect(big.output).toContain(`lines 1-${next - 1} of 5000`);
  });

  test("read_file refuses paths outside the workspace, symlinks out of it included", async () => {
    expect(
      await callTool(implementTools, "read_file", JSON.stringify({ path: "../secret.txt" }), host()),
    ).toEqual({ output: "path escapes the workspace: ../secret.txt", isError: true });
    expect(await callTool(implementTools, "read_file", JSON.stringify({ path: "leak.txt" }), host())).toEqual(
      { output: "path leads outside the workspace through a symlink: leak.txt", isError: true },
    );
    expect(
      await callTool(implementTools, "read_file", JSON.stringify({ path: "/etc/passwd" }), host()),
    ).toMatchObject({ isError: true });
  });

  test("search finds matches with path and line, and says when there are none", async () => {
    const found = await callTool(
      implementTools,
      "search",
      JSON.stringify({ pattern: "needle", path: "src" }),
      host(),
    );
    expect(found.output.trim()).toBe("src/a.ts:1:export const needle = 1;");
    expect(
      await callTool(implementTools, "search", JSON.stringify({ pattern: "nothing-matches-this" }), host()),
    ).toEqual({ output: "no matches" });
  });
});

describe("tool calls", () => {
  test("unknown tools, invalid JSON and invalid arguments go back to the model as errors", async () => {
    expect(await callTool(toolsForPhase("plan"), "apply_patch", "{}", host())).toMatchObject({
      isError: true,
      output: expect.stringContaining('unknown tool "apply_patch"'),
    });
    expect(await callTool(implementTools, "shell", "{not json", host())).toEqual({
      isError: true,
      output: "the arguments of shell are not valid JSON",
    });
    const bad = await callTool(implementTools, "shell", JSON.stringify({ command: [] }), host());
    expect(bad).toMatchObject({
      isError: true,
      output: expect.stringContaining("invalid arguments for shell"),
    });
  });

  test("update_plan reports the steps; submit_plan and finish end the run", async () => {
    const steps = [
      { step: "Read", status: "completed" },
      { step: "Fix", status: "in_progress" },
    ];
    expect(await callTool(implementTools, "update_plan", JSON.stringify({ steps }), host())).toEqual({
      output: "Plan updated.",
    });
    expect(plans[plans.length - 1]).toEqual(steps);
    expect(
      await callTool(
        toolsForPhase("plan"),
        "submit_plan",
        JSON.stringify({ summary: "s", steps: ["a"] }),
        host(),
      ),
    ).toMatchObject({ terminal: { kind: "plan", summary: "s", steps: ["a"] } });
    expect(
      await callTool(implementTools, "finish", JSON.stringify({ summary: "done" }), host()),
    ).toMatchObject({ terminal: { kind: "finish", summary: "done" } });
  });

  test("tool sets per phase, with schemas the Chat Completions API accepts", () => {
    const names = (phase: "plan" | "implement") =>
      toolSpecs(toolsForPhase(phase))
        .map((t) => t.function.name)
        .sort();
    expect(names("plan")).toEqual(["read_file", "search", "shell", "submit_plan", "update_plan"]);
    expect(names("implement")).toEqual([
      "apply_patch",
      "finish",
      "read_file",
      "search",
      "shell",
      "update_plan",
    ]);
    for (const phase of ["plan", "implement"] as const) {
      expect(() =>
        validateChatRequest({
          model: "m",
          messages: [{ role: "user", content: "x" }],
          tools: toolSpecs(toolsForPhase(phase)),
        }),
      ).not.toThrow();
    }
    const shell = toolSpecs(implementTools).find((t) => t.function.name === "shell")!;
    expect(shell.function.parameters).toMatchObject({
      type: "object",
      required: ["command"],
      properties: { command: { type: "array", items: { type: "string" } } },
    });
  });
});
