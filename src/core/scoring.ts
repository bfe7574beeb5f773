// Scores an implement attempt from the runner's evidence (the commands it recorded), never from the
// model's prose: did tests run, did the last test run pass, what failed after it. Picks the best-of-N winner.
import type { AttemptResult } from "./task.js";
import type { EvidenceEntry } from "../shared/run-result.js";

export interface ScoreInput {
  outcome: AttemptResult["outcome"];
  evidence: readonly EvidenceEntry[];
  filesChanged: readonly string[];
}

export interface AttemptScore {
  score: number;
  /** The last test command ran conclusively (its exit code is the test's) and exited 0. */
  testsPassed: boolean;
  /** Commands that failed after the last passing test run (all failures when no test run passed). */
  failingCommands: number;
}

/** A failed run never wins. */
export const FAILED_SCORE = -1e9;
/** Below any attempt with changes (whose score stays above -1e6 within the evidence limits). */
export const NO_CHANGE_SCORE = -1e6;
export const TESTS_PASSED_BONUS = 1000;
export const TESTS_RAN_BONUS = 100;
export const FAILING_COMMAND_PENALTY = 50;

/**
 * - `test`: a test command whose exit code is the command's exit code;
 * - `masked_test`: a test command whose status may not reach the exit code (`npm test | tail`,
 *   `pytest || true`, `pytest; echo done`, a backgrounded or `if`-tested run) — it ran, but a zero
 *   exit proves nothing;
 * - `none`: no test command.
 */
export type TestCommandKind = "none" | "test" | "masked_test";

export function scoreAttempt(input: ScoreInput): AttemptScore {
  let lastTest: { index: number; passed: boolean } | undefined;
  let lastPassIndex = -1;
  for (const [index, entry] of input.evidence.entries()) {
    const kind = testCommandKind(entry.argv);
    if (kind === "none") continue;
    const passed = kind === "test" && entry.exitCode === 0 && entry.timedOut !== true;
    lastTest = { index, passed };
    if (passed) lastPassIndex = index;
  }
  const ranTests = lastTest !== undefined;
  const testsPassed = lastTest?.passed === true;
  let failingCommands = 0;
  for (const [index, entry] of input.evidence.entries()) {
    if (index > lastPassIndex && isFailure(entry)) failingCommands += 1;
  }

  const quality =
    (testsPassed ? TESTS_PASSED_BONUS : 0) +
    (ranTests ? TESTS_RAN_BONUS : 0) -
    FAILING_COMMAND_PENALTY * failingCommands -
    // A small size penalty: between equally tested attempts, prefer the smaller change.
    input.filesChanged.length;
  const score =
    input.outcome === "failed"
      ? FAILED_SCORE
      : input.outcome === "no_change"
        ? NO_CHANGE_SCORE + quality
        : quality;
  return { score, testsPassed, failingCommands };
}

/** The highest score; ties go to the lowest attempt number (then to the earlier result). */
export function bestAttempt(results: readonly AttemptResult[]): AttemptResult | undefined {
  let best: AttemptResult | undefined;
  for (const result of results) {
    if (
      best === undefined ||
      result.score > best.score ||
      (result.score === best.score && result.attempt < best.attempt)
    ) {
      best = result;
    }
  }
  return best;
}

export function isTestCommand(argv: readonly string[]): boolean {
  return testCommandKind(argv) !== "none";
}

export function testCommandKind(argv: readonly string[]): TestCommandKind {
  const shell = shellInvocation(argv);
  if (shell === undefined) return isTestInvocation(argv) ? "test" : "none";
  if (shell.script === undefined) return isTestInvocation(shell.rest) ? "test" : "none";
  return scriptTestKind(shell.script, shell.errexit, shell.pipefail);
}

// ---------------------------------------------------------------------------------------------
// Failures

// Exit status 1 of these only answers a question ("no match", "files differ"); it is not an error.
const PROBES = new Set(["grep", "egrep", "fgrep", "rg", "ag", "diff", "cmp", "test", "[", "which"]);

function isFailure(entry: EvidenceEntry): boolean {
  if (entry.timedOut === true || entry.exitCode === null) return true;
  if (entry.exitCode === 0) return false;
  if (entry.exitCode === 1 && isProbe(entry.argv)) return false;
  return true;
}

function isProbe(argv: readonly string[]): boolean {
  const words = stripWrappers(argv);
  const name = commandName(words[0]);
  if (PROBES.has(name)) return true;
  return name === "git" && (words.includes("grep") || words.includes("diff"));
}

// ---------------------------------------------------------------------------------------------
// Shell scripts (`bash -lc "cd app && npm test 2>&1 | tail -50"`)

const SHELLS = new Set(["sh", "bash", "zsh", "dash", "ash", "ksh"]);

interface ShellInvocation {
  /** The `-c` script; undefined when the shell runs a script file (`bash test.sh`), held in `rest`. */
  script?: string;
  rest: readonly string[];
  errexit: boolean;
  pipefail: boolean;
}

function shellInvocation(argv: readonly string[]): ShellInvocation | undefined {
  const words = stripWrappers(argv);
  if (!SHELLS.has(commandName(words[0]))) return undefined;
  let errexit = false;
  let pipefail = false;
  for (let i = 1; i < words.length; i++) {
    const word = words[i] ?? "";
    if (word === "-o" || word === "+o") {
      const option = words[i + 1];
      if (option === "pipefail") pipefail = word === "-o";
      if (option === "errexit") errexit = word === "-o";
      i += 1;
      continue;
    }
    if (/^-[A-Za-z]+$/.test(word)) {
      if (word.includes("e")) errexit = true;
      if (word.includes("c")) return { script: words[i + 1] ?? "", rest: [], errexit, pipefail };
      continue;
    }
    if (word.startsWith("--") || /^\+[A-Za-z]+$/.test(word)) continue;
    return { rest: words.slice(i), errexit, pipefail };
  }
  return undefined;
}

type Operator = "&&" | "||" | "|" | ";" | "&";

interface Segment {
  words: string[];
  /** The operator joining this command to the next one. */
  next?: Operator;
}

/** Splits a shell script into simple commands: quotes, escapes, redirections and comments understood. */
function splitScript(script: string): Segment[] {
  const segments: Segment[] = [];
  let words: string[] = [];
  let word = "";
  let inWord = false;
  let skipNextWord = false; // the target of a redirection is not an argument

  const flush = (): void => {
    if (!inWord) return;
    if (skipNextWord) skipNextWord = false;
    else words.push(word);
    word = "";
    inWord = false;
  };
  const operator = (op: Operator): void => {
    flush();
    segments.push({ words, next: op });
    words = [];
  };

  for (let i = 0; i < script.length; i++) {
    const c = script[i] ?? "";
    const next = script[i + 1];
    if (c === "'") {
      const end = script.indexOf("'", i + 1);
      const stop = end === -1 ? script.length : end;
      word += script.slice(i + 1, stop);
      inWord = true;
      i = stop;
    } else if (c === '"') {
      inWord = true;
      for (i += 1; i < script.length && script[i] !== '"'; i++) {
        if (script[i] === "\\" && i + 1 < script.length && '"\\$`'.includes(script[i + 1] ?? "")) i += 1;
        word += script[i];
      }
    } else if (c === "\\") {
      if (next !== "\n" && next !== undefined) {
        word += next;
        inWord = true;
      }
      i += 1;
    } else if (c === "$" && next === "(") {
      // Command substitution stays inside the word: its commands do not decide the exit status.
      let depth = 0;
      for (; i < script.length; i++) {
        const d = script[i];
        if (d === "(") depth += 1;
        if (d === ")") depth -= 1;
        word += d;
        if (depth === 0) break;
      }
      inWord = true;
    } else if (c === "`") {
      const end = script.indexOf("`", i + 1);
      const stop = end === -1 ? script.length : end;
      word += script.slice(i, stop + 1);
      inWord = true;
      i = stop;
    } else if (c === "#" && !inWord) {
      while (i + 1 < script.length && script[i + 1] !== "\n") i += 1;
    } else if (c === " " || c === "\t" || c === "\r" || c === "(" || c === ")") {
      flush();
    } else if (c === "\n") {
      operator(";");
    } else if (c === ";") {
      operator(";");
      if (next === ";") i += 1;
    } else if (c === "&" && next === "&") {
      operator("&&");
      i += 1;
    } else if (c === "&" && next === ">") {
      flush();
      i += script[i + 2] === ">" ? 2 : 1;
      skipNextWord = true;
    } else if (c === "&") {
      operator("&");
    } else if (c === "|" && next === "|") {
      operator("||");
      i += 1;
    } else if (c === "|") {
      operator("|");
      if (next === "&") i += 1;
    } else if (c === ">" || c === "<") {
      if (inWord && /^\d+$/.test(word)) {
        word = "";
        inWord = false; // the file descriptor of `2>`
      } else {
        flush();
      }
      while (i + 1 < script.length && "<>|".includes(script[i + 1] ?? "")) i += 1;
      if (script[i + 1] === "&") {
        // `2>&1`, `>&-`: a descriptor, not a file name
        i += 1;
        while (i + 1 < script.length && /[\d-]/.test(script[i + 1] ?? "")) i += 1;
      } else {
        skipNextWord = true;
      }
    } else {
      word += c;
      inWord = true;
    }
  }
  flush();
  segments.push({ words });
  return segments.filter((segment) => segment.words.length > 0);
}

const CONDITION_KEYWORDS = new Set(["if", "elif", "while", "until", "!"]);
const STRUCTURE_KEYWORDS = new Set(["then", "else", "do", "{", "}", "time"]);

function scriptTestKind(script: string, errexitAtStart: boolean, pipefailAtStart: boolean): TestCommandKind {
  const segments = splitScript(script);
  let errexit = errexitAtStart;
  let pipefail = pipefailAtStart;
  let kind: TestCommandKind = "none";
  for (const [index, segment] of segments.entries()) {
    let words = segment.words;
    while (words.length > 0 && STRUCTURE_KEYWORDS.has(words[0] ?? "")) words = words.slice(1);
    if (words[0] === "set") {
      ({ errexit, pipefail } = applySet(words.slice(1), errexit, pipefail));
      continue;
    }
    const conditional = words.length > 0 && CONDITION_KEYWORDS.has(words[0] ?? "");
    if (conditional) words = words.slice(1);
    if (!isTestInvocation(words)) continue;
    const conclusive = !conditional && statusReachesExit(segments, index, errexit, pipefail);
    // One conclusive test run in the script makes its exit status meaningful.
    if (conclusive) kind = "test";
    else if (kind === "none") kind = "masked_test";
  }
  return kind;
}

function applySet(
  args: readonly string[],
  errexit: boolean,
  pipefail: boolean,
): { errexit: boolean; pipefail: boolean } {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const on = arg.startsWith("-");
    if (!/^[-+][A-Za-z]+$/.test(arg)) continue;
    if (arg.includes("e")) errexit = on;
    if (arg.includes("o")) {
      const option = args[i + 1];
      if (option === "pipefail") pipefail = on;
      if (option === "errexit") errexit = on;
      i += 1;
    }
  }
  return { errexit, pipefail };
}

/** Does a failure of command `index` make the whole script exit non-zero? */
function statusReachesExit(
  segments: readonly Segment[],
  index: number,
  errexit: boolean,
  pipefail: boolean,
): boolean {
  for (let j = index; j < segments.length - 1; j++) {
    const op = segments[j]?.next;
    if (op === "&&") continue;
    if (op === "|" && pipefail) continue;
    if ((op === ";" || op === undefined) && errexit) continue;
    if (op === "||") return isExitWithError(segments[j + 1]?.words ?? []);
    return false;
  }
  // A trailing `&` puts the last command in the background.
  return segments[segments.length - 1]?.next !== "&";
}

function isExitWithError(words: readonly string[]): boolean {
  return (
    (words[0] === "exit" || words[0] === "return") && words[1] !== undefined && /^[1-9]\d*$/.test(words[1])
  );
}

// ---------------------------------------------------------------------------------------------
// Recognising one test command (argv without shell syntax)

/** `./node_modules/.bin/jest` -> `jest`, `python3.12` -> `python`. */
function commandName(word: string | undefined): string {
  if (word === undefined) return "";
  const base = (word.split("/").pop() ?? word).toLowerCase().replace(/\.exe$/, "");
  if (/^python\d*(\.\d+)?$/.test(base)) return "python";
  return base;
}

const ENV_ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

/** Strips prefixes that run another command: `FOO=1`, `env`, `timeout 60`, `npx`, `uv run`, `bundle exec`, `nyc`… */
function stripWrappers(argv: readonly string[]): readonly string[] {
  let words = argv;
  for (;;) {
    const first = words[0];
    if (first === undefined) return words;
    const name = commandName(first);
    const second = words[1];
    if (ENV_ASSIGNMENT.test(first)) {
      words = words.slice(1);
    } else if (name === "env") {
      words = skipOptions(words.slice(1), new Set(["-u", "--unset", "-C", "--chdir", "-S"]));
    } else if (name === "timeout") {
      words = skipOptions(words.slice(1), new Set(["-s", "--signal", "-k", "--kill-after"])).slice(1);
    } else if (name === "nice") {
      words = skipOptions(words.slice(1), new Set(["-n", "--adjustment"]));
    } else if (["time", "command", "exec", "nohup", "stdbuf", "xvfb-run", "nyc", "c8"].includes(name)) {
      words = skipOptions(words.slice(1), new Set());
    } else if (["npx", "bunx", "pnpx"].includes(name)) {
      words = skipOptions(words.slice(1), new Set(["-p", "--package", "-c", "--call"]));
    } else if (
      (["npm", "pnpm", "yarn"].includes(name) && (second === "exec" || second === "dlx" || second === "x")) ||
      (["uv", "poetry", "pipenv", "pdm", "rye", "hatch"].includes(name) && second === "run") ||
      (name === "bundle" && second === "exec") ||
      (name === "dotnet" && second === "tool" && words[2] === "run")
    ) {
      words = skipOptions(words.slice(name === "dotnet" ? 3 : 2), new Set(["--with", "-p", "--package"]));
    } else {
      return words;
    }
  }
}

/** Drops leading options (and the values of `withValue` options) and a `--` separator. */
function skipOptions(words: readonly string[], withValue: ReadonlySet<string>): readonly string[] {
  let i = 0;
  while (i < words.length) {
    const word = words[i] ?? "";
    if (word === "--") return words.slice(i + 1);
    if (ENV_ASSIGNMENT.test(word)) {
      i += 1;
      continue;
    }
    if (!word.startsWith("-") || word === "-") break;
    i += withValue.has(word) ? 2 : 1;
  }
  return words.slice(i);
}

/** Positional arguments, skipping options and the values of `withValue` options. */
function positionals(words: readonly string[], withValue: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? "";
    if (word === "--") break;
    if (word.startsWith("-")) {
      if (withValue.has(word)) i += 1;
      continue;
    }
    if (ENV_ASSIGNMENT.test(word)) continue;
    out.push(word);
  }
  return out;
}

const DIRECT_RUNNERS = new Set([
  "jest",
  "vitest",
  "mocha",
  "ava",
  "tap",
  "jasmine",
  "karma",
  "pytest",
  "py.test",
  "nose2",
  "tox",
  "nox",
  "trial",
  "rspec",
  "phpunit",
  "pest",
  "ctest",
  "gotestsum",
  "test.sh",
  "tests.sh",
  "run_tests.sh",
  "run-tests.sh",
  "runtests.sh",
]);

/** `<tool> <sub>` where the first positional argument names the test action. */
const SUBCOMMAND_RUNNERS: Record<string, ReadonlySet<string>> = {
  go: new Set(["test"]),
  cargo: new Set(["test", "t", "nextest"]),
  dotnet: new Set(["test", "vstest"]),
  mix: new Set(["test"]),
  swift: new Set(["test"]),
  lein: new Set(["test"]),
  stack: new Set(["test"]),
  cabal: new Set(["test"]),
  dune: new Set(["test", "runtest"]),
  deno: new Set(["test"]),
  bazel: new Set(["test"]),
  bazelisk: new Set(["test"]),
  meson: new Set(["test"]),
  flutter: new Set(["test"]),
  dart: new Set(["test"]),
  rails: new Set(["test", "test:system", "spec"]),
  playwright: new Set(["test"]),
  cypress: new Set(["run"]),
};

const TEST_SCRIPT_NAME = /^(test|tests|tst|t|spec|specs|unit|e2e|integration|jest|vitest|mocha)([:._-].*)?$/i;
const MAKE_TEST_TARGET = /^(test|tests|check|unittest|test[-_:].+|.+[-_](test|tests))$/;
const MAVEN_TEST_GOAL = /^(test|verify|integration-test|surefire:test|failsafe:integration-test)$/;
const GRADLE_TEST_TASK = /^(:?[\w.-]+:)*(test\w*|check|\w*Test)$/;
const PYTHON_TEST_MODULES = new Set([
  "pytest",
  "unittest",
  "nose2",
  "nose",
  "tox",
  "nox",
  "green",
  "twisted.trial",
]);
const PYTHON_TEST_SCRIPT = /(^|\/)(test_[\w.-]*|[\w.-]*_test|tests?|runtests|run_tests)\.py$/;
// `node test.js`, `node test/unit.mjs`, `node src/foo.test.js`: a script that is a test by its name.
const NODE_TEST_SCRIPT =
  /((^|\/)(tests?|spec|run-?tests?|test[_-][\w.-]*)|[._-](test|spec))\.[cm]?[jt]s$|(^|\/)(tests?|__tests__)\/[\w./-]+\.[cm]?[jt]s$/;

function isTestInvocation(argv: readonly string[]): boolean {
  const words = stripWrappers(argv);
  const name = commandName(words[0]);
  const args = words.slice(1);
  if (name === "") return false;
  if (DIRECT_RUNNERS.has(name)) return true;

  const sub = SUBCOMMAND_RUNNERS[name];
  if (sub !== undefined) {
    const first = positionals(args).find((word) => !word.startsWith("+")); // `cargo +nightly test`
    return first !== undefined && sub.has(first);
  }

  switch (name) {
    case "npm": {
      const [command, script] = positionals(args, new Set(["--prefix", "-w", "--workspace"]));
      if (command === "test" || command === "t" || command === "tst" || command === "it") return true;
      return (
        ["run", "run-script", "rum", "urn"].includes(command ?? "") && TEST_SCRIPT_NAME.test(script ?? "")
      );
    }
    case "pnpm":
    case "yarn":
    case "bun":
    case "composer": {
      let rest = positionals(
        args,
        new Set(["--filter", "-F", "-C", "--dir", "--cwd", "-d", "--working-dir"]),
      );
      if (rest[0] === "workspace") rest = rest.slice(2); // `yarn workspace <name> <script>`
      const script = rest[0] === "run" || rest[0] === "run-script" ? rest[1] : rest[0];
      return script !== undefined && TEST_SCRIPT_NAME.test(script);
    }
    case "python":
    case "py": {
      const module = args.indexOf("-m");
      if (module >= 0) {
        const target = args[module + 1] ?? "";
        if (PYTHON_TEST_MODULES.has(target)) return true;
        return target === "django" && args[module + 2] === "test";
      }
      const script = positionals(args)[0];
      if (script === undefined) return false;
      if (PYTHON_TEST_SCRIPT.test(script)) return true;
      const [, action] = positionals(args);
      return (commandName(script) === "manage.py" || commandName(script) === "setup.py") && action === "test";
    }
    case "make":
    case "gmake":
      return positionals(args, new Set(["-C", "-f", "-I", "-o", "-W", "--directory", "--file"])).some(
        (target) => MAKE_TEST_TARGET.test(target),
      );
    case "mvn":
    case "mvnw":
      return positionals(args, new Set(["-pl", "--projects", "-P", "-f", "--file", "-s", "-T", "-rf"])).some(
        (goal) => MAVEN_TEST_GOAL.test(goal),
      );
    case "gradle":
    case "gradlew":
      return positionals(args, new Set(["-p", "-x", "--exclude-task", "-b", "-c", "--project-dir"])).some(
        (task) => GRADLE_TEST_TASK.test(task),
      );
    case "rake":
      return positionals(args).some((task) => /^(test|spec)(:.+)?$/.test(task));
    case "node":
    case "nodejs": {
      const script = positionals(
        args,
        new Set(["-r", "--require", "--import", "--loader", "-C", "--conditions"]),
      )[0];
      return script !== undefined && NODE_TEST_SCRIPT.test(script);
    }
    case "ruby":
      return positionals(args, new Set(["-I", "-r"])).some((file) => /(_test|_spec)\.rb$/.test(file));
    case "sbt":
      return positionals(args).some((task) => /^(test|testOnly|testQuick|it:test)\b/.test(task));
    case "zig":
      return args[0] === "build" && positionals(args.slice(1)).includes("test");
    default:
      return false;
  }
}
