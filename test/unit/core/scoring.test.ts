// Attempt scoring from the runner's evidence: test-command recognition, masked exit codes, ranking.
import { describe, expect, test } from "@jest/globals";
import {
  FAILED_SCORE,
  NO_CHANGE_SCORE,
  bestAttempt,
  isTestCommand,
  scoreAttempt,
  testCommandKind,
  type TestCommandKind,
} from "../../../src/core/scoring.js";
import type { AttemptResult } from "../../../src/core/task.js";
import type { EvidenceEntry } from "../../../src/shared/run-result.js";

function cmd(argv: string[], exitCode: number | null = 0, extra: Partial<EvidenceEntry> = {}): EvidenceEntry {
  return { argv, exitCode, durationMs: 10, ...extra };
}

const sh = (script: string): string[] => ["bash", "-lc", script];

describe("testCommandKind", () => {
  const cases: Array<[string[], TestCommandKind]> = [
    // JavaScript
    [["npm", "test"], "test"],
    [["npm", "t"], "test"],
    [["npm", "run", "test"], "test"],
    [["npm", "run", "test:unit", "--", "--runInBand"], "test"],
    [["npm", "--prefix", "web", "test"], "test"],
    [["npm", "-w", "api", "run", "test"], "test"],
    [["npm", "run", "build"], "none"],
    [["npm", "install"], "none"],
    [["npm", "--prefix", "test", "install"], "none"],
    [["pnpm", "test"], "test"],
    [["pnpm", "-r", "test"], "test"],
    [["pnpm", "--filter", "web", "run", "test"], "test"],
    [["pnpm", "vitest", "run"], "test"],
    [["pnpm", "exec", "jest"], "test"],
    [["pnpm", "install"], "none"],
    [["yarn", "test"], "test"],
    [["yarn", "workspace", "web", "test"], "test"],
    [["yarn", "build"], "none"],
    [["bun", "test"], "test"],
    [["bun", "run", "test"], "test"],
    [["bun", "install"], "none"],
    [["npx", "jest", "src/foo.test.ts"], "test"],
    [["npx", "--yes", "vitest", "run"], "test"],
    [["npx", "mocha"], "test"],
    [["npx", "playwright", "test"], "test"],
    [["npx", "playwright", "install"], "none"],
    [["npx", "tsc", "--noEmit"], "none"],
    [["npx", "eslint", "."], "none"],
    [["./node_modules/.bin/jest"], "test"],
    [["node", "--test"], "none"],
    [["deno", "test"], "test"],
    // Python
    [["pytest", "-q"], "test"],
    [["python", "-m", "pytest", "tests/"], "test"],
    [["python3", "-m", "unittest", "discover"], "test"],
    [["python3.12", "-m", "pytest"], "test"],
    [["python", "-m", "pip", "install", "-e", "."], "none"],
    [["python", "manage.py", "test"], "test"],
    [["python", "manage.py", "migrate"], "none"],
    [["python", "tests/test_parser.py"], "test"],
    [["python", "setup.py", "build"], "none"],
    [["uv", "run", "pytest"], "test"],
    [["poetry", "run", "pytest", "-x"], "test"],
    [["tox", "-e", "py312"], "test"],
    // Go, Rust, JVM, .NET, Ruby, others
    [["go", "test", "./..."], "test"],
    [["go", "build", "./..."], "none"],
    [["go", "vet", "./..."], "none"],
    [["cargo", "test"], "test"],
    [["cargo", "+nightly", "test"], "test"],
    [["cargo", "nextest", "run"], "test"],
    [["cargo", "build"], "none"],
    [["make", "test"], "test"],
    [["make", "check"], "test"],
    [["make", "-j4", "test-unit"], "test"],
    [["make", "-C", "test", "build"], "none"],
    [["make", "lint"], "none"],
    [["mvn", "-q", "test"], "test"],
    [["./mvnw", "clean", "verify"], "test"],
    [["mvn", "package", "-DskipTests"], "none"],
    [["gradle", "test"], "test"],
    [["./gradlew", ":app:testDebugUnitTest"], "test"],
    [["./gradlew", "assemble"], "none"],
    [["bundle", "exec", "rspec"], "test"],
    [["bundle", "exec", "rake", "test"], "test"],
    [["rake", "db:migrate"], "none"],
    [["bin/rails", "test"], "test"],
    [["dotnet", "test"], "test"],
    [["dotnet", "build"], "none"],
    [["mix", "test"], "test"],
    [["swift", "test"], "test"],
    [["ctest", "--output-on-failure"], "test"],
    [["./scripts/test.sh"], "test"],
    // wrappers
    [["env", "CI=1", "npm", "test"], "test"],
    [["CI=true", "npm", "test"], "test"],
    [["timeout", "600", "npm", "test"], "test"],
    [["timeout", "-s", "KILL", "60", "pytest"], "test"],
    [["xvfb-run", "-a", "npm", "test"], "test"],
    [["nyc", "mocha"], "test"],
    // not tests
    [["git", "status"], "none"],
    [["ls", "test"], "none"],
    [["cat", "test/foo.test.ts"], "none"],
    [["echo", "npm test"], "none"],
    [["rg", "pytest"], "none"],
  ];
  test.each(cases)("%j -> %s", (argv, kind) => {
    expect(testCommandKind(argv)).toBe(kind);
    expect(isTestCommand(argv)).toBe(kind !== "none");
  });

  const scripts: Array<[string[], TestCommandKind]> = [
    [sh("npm test"), "test"],
    [sh("cd web && npm test"), "test"],
    [sh("cd web && npm test && echo ok"), "test"],
    [sh("npm ci && npm test -- --coverage"), "test"],
    [sh("npm test 2>&1"), "test"],
    [sh("npm test > /tmp/out.log 2>&1"), "test"],
    [sh("npm test &> test.log"), "test"],
    [sh("npm test 2>&1 | tail -50"), "masked_test"],
    [sh("set -o pipefail; npm test 2>&1 | tail -50"), "test"],
    [sh("set -euo pipefail\nnpm test | tail -n 20"), "test"],
    [["bash", "-o", "pipefail", "-c", "pytest | tee out.txt"], "test"],
    [sh("pytest || true"), "masked_test"],
    [sh("pytest || exit 1"), "test"],
    [sh("pytest; echo done"), "masked_test"],
    [sh("pytest; echo $?"), "masked_test"],
    [["bash", "-ec", "pytest; echo done"], "test"],
    [sh("set -e; pytest; echo done"), "test"],
    [sh("set -e; set +e; pytest; echo done"), "masked_test"],
    [sh("npm test &"), "masked_test"],
    [sh("if npm test; then echo ok; fi"), "masked_test"],
    [sh("! npm test"), "masked_test"],
    [sh("echo 'npm test' && ls"), "none"],
    [sh('echo "run: npm test; pytest" | wc -l'), "none"],
    [sh("# npm test\nls"), "none"],
    [sh("grep -r 'pytest' . | head"), "none"],
    [sh("cd app; npm test"), "test"],
    [sh("npm run lint && npm test"), "test"],
    [sh("npm test; npm run lint"), "masked_test"],
    [sh("npm test 2>&1 | tail; npm test"), "test"],
    [sh("(cd web && npm test)"), "test"],
    [["sh", "-c", "go test ./... 2>&1"], "test"],
    [["bash", "scripts/test.sh"], "test"],
    [["bash", "scripts/build.sh"], "none"],
    [sh("FOO='a b' CI=1 npx jest --ci"), "test"],
    [sh('echo "$(npm test)"'), "none"],
  ];
  test.each(scripts)("shell %j -> %s", (argv, kind) => {
    expect(testCommandKind(argv)).toBe(kind);
  });
});

describe("scoreAttempt", () => {
  test("changes with a passing last test run: tests bonuses, size penalty, no failures", () => {
    const evidence = [cmd(["npm", "ci"]), cmd(["npm", "test"], 1), cmd(["npm", "test"], 0)];
    expect(scoreAttempt({ outcome: "changes", evidence, filesChanged: ["a.ts", "b.ts"] })).toEqual({
      score: 1000 + 100 - 2,
      testsPassed: true,
      failingCommands: 0,
    });
  });

  test("the LAST test run decides: a passing run followed by a failing one is not passing", () => {
    const evidence = [cmd(["npm", "test"], 0), cmd(["npx", "tsc"], 2), cmd(["npm", "test"], 1)];
    expect(scoreAttempt({ outcome: "changes", evidence, filesChanged: ["a.ts"] })).toEqual({
      score: 100 - 2 * 50 - 1,
      testsPassed: false,
      failingCommands: 2,
    });
  });

  test("failures before the last passing test run are forgiven, those after it count", () => {
    const evidence = [
      cmd(["npx", "tsc"], 2),
      cmd(["npm", "test"], 1),
      cmd(["npm", "test"], 0),
      cmd(["npm", "run", "lint"], 1),
      cmd(["npm", "run", "build"], null, { timedOut: true }),
    ];
    expect(scoreAttempt({ outcome: "changes", evidence, filesChanged: [] })).toEqual({
      score: 1000 + 100 - 100,
      testsPassed: true,
      failingCommands: 2,
    });
  });

  test("no test run at all: every failure counts, no bonus", () => {
    const evidence = [cmd(["npx", "tsc"], 2), cmd(["ls"], 0), cmd(["cat", "missing"], 1)];
    expect(scoreAttempt({ outcome: "changes", evidence, filesChanged: ["x"] })).toEqual({
      score: -100 - 1,
      testsPassed: false,
      failingCommands: 2,
    });
  });

  test("a test whose status is masked by a pipe ran, but did not prove anything", () => {
    const evidence = [cmd(sh("npm test 2>&1 | tail -20"), 0)];
    expect(scoreAttempt({ outcome: "changes", evidence, filesChanged: ["x"] })).toEqual({
      score: 100 - 1,
      testsPassed: false,
      failingCommands: 0,
    });
  });

  test("a timed-out test run with exit 0 is not a pass", () => {
    const evidence = [cmd(["pytest"], 0, { timedOut: true })];
    expect(scoreAttempt({ outcome: "changes", evidence, filesChanged: [] })).toMatchObject({
      testsPassed: false,
      failingCommands: 1,
    });
  });

  test("exit 1 of a search or comparison is an answer, not a failure; exit 2 is an error", () => {
    const evidence = [
      cmd(["grep", "-r", "foo", "src"], 1),
      cmd(["rg", "bar"], 1),
      cmd(["git", "diff", "--exit-code"], 1),
      cmd(["grep", "foo", "missing-file"], 2),
    ];
    expect(scoreAttempt({ outcome: "changes", evidence, filesChanged: [] }).failingCommands).toBe(1);
  });

  test("failed outcomes never win; no_change ranks below any change", () => {
    const passing = [cmd(["npm", "test"], 0)];
    expect(scoreAttempt({ outcome: "failed", evidence: passing, filesChanged: [] }).score).toBe(FAILED_SCORE);
    const noChange = scoreAttempt({ outcome: "no_change", evidence: passing, filesChanged: [] });
    expect(noChange).toEqual({ score: NO_CHANGE_SCORE + 1100, testsPassed: true, failingCommands: 0 });
    const worstChange = scoreAttempt({
      outcome: "changes",
      evidence: Array.from({ length: 5000 }, () => cmd(["false"], 1)),
      filesChanged: Array.from({ length: 10_000 }, (_, i) => `f${i}`),
    });
    expect(worstChange.score).toBeGreaterThan(noChange.score);
    expect(noChange.score).toBeGreaterThan(FAILED_SCORE);
  });
});

describe("bestAttempt", () => {
  const result = (attempt: number, score: number): AttemptResult => ({
    attempt,
    runId: `t-abc123-i1-a${attempt}`,
    outcome: "changes",
    summary: `attempt ${attempt}`,
    headBranch: `baton/t-abc123-a${attempt}`,
    filesChanged: [],
    evidence: [],
    score,
    testsPassed: false,
    failingCommands: 0,
  });

  test("highest score wins", () => {
    expect(bestAttempt([result(1, 10), result(2, 1099), result(3, 50)])?.attempt).toBe(2);
  });

  test("ties go to the lowest attempt whatever the order", () => {
    expect(bestAttempt([result(3, 7), result(2, 7), result(4, 1)])?.attempt).toBe(2);
    expect(bestAttempt([result(1, 7), result(2, 7)])?.attempt).toBe(1);
  });

  test("no results, no best", () => {
    expect(bestAttempt([])).toBeUndefined();
  });
});
