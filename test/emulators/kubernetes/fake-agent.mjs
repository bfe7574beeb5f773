// A stand-in for `baton agent` in Kubernetes tests: proves what the container got (hash of the run
// token, HOME, a writable workspace) and behaves as `?mode=` in BATON_RUNNER_URL asks:
// exit0 (default), exit1, sleep (until killed), bigLog (500 numbered lines, then exit 1).
// Exit codes are set with process.exitCode so piped output is flushed before the process ends.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { setInterval } from "node:timers";
import { URL } from "node:url";

const runnerUrl = process.env.BATON_RUNNER_URL ?? "";
const token = process.env.BATON_RUN_TOKEN ?? "";
const mode = runnerUrl === "" ? "exit0" : (new URL(runnerUrl).searchParams.get("mode") ?? "exit0");

process.stdout.write(`token-sha256=${createHash("sha256").update(token).digest("hex")}\n`);
process.stdout.write(`home=${process.env.HOME ?? ""}\n`);
process.stdout.write(`cwd=${process.cwd()}\n`);
writeFileSync(join(process.cwd(), "marker.txt"), "written by the fake agent\n");

if (mode === "exit1") {
  process.stderr.write("fatal: the fake agent was told to fail\n");
  process.exitCode = 1;
} else if (mode === "sleep") {
  process.stdout.write("working\n");
  setInterval(() => process.stdout.write("still working\n"), 200);
} else if (mode === "bigLog") {
  for (let i = 1; i <= 500; i += 1) process.stdout.write(`line ${i}\n`);
  process.exitCode = 1;
} else {
  process.stdout.write("done\n");
}
