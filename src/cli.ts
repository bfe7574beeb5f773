// The `baton` command (CONTRACT §1): bot | agent | doctor | --help | --version.
// Reads the environment here (the edge) and hands values inward. Configuration errors print one
// readable line per problem and exit 2, never a stack trace.
import { readFileSync } from "node:fs";
import { ConfigError, loadConfig, type Role } from "./config/load.js";

const USAGE = `baton — delegate coding work from Slack to an autonomous agent

Usage:
  baton bot [--role all|bot|worker]   run the Slack app, the run supervisor and the runner API
                                      (--role bot: Slack ingress only; --role worker: runs only)
  baton agent                         run one agent run (inside a Job or a local workspace);
                                      needs BATON_RUNNER_URL and BATON_RUN_TOKEN
  baton doctor                        check configuration and every dependency, one line each
  baton --help                        this text
  baton --version                     the version

Configuration comes from the environment (see README.md "Configuration") and the policy file
named by BATON_CONFIG.
`;

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

type BotRole = "all" | "bot" | "worker";

function parseRole(args: string[]): BotRole | string {
  let role: string = "all";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--role") role = args[++i] ?? "";
    else if (arg.startsWith("--role=")) role = arg.slice("--role=".length);
    else return `unknown option ${arg}`;
  }
  return role === "all" || role === "bot" || role === "worker"
    ? role
    : `--role must be all, bot or worker (got "${role}")`;
}

function printConfigError(error: ConfigError): number {
  process.stderr.write("baton: configuration error\n");
  for (const problem of error.problems) process.stderr.write(`  - ${problem}\n`);
  process.stderr.write("See README.md, section Configuration.\n");
  return 2;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return command === undefined ? 1 : 0;
      case "--version":
      case "-v":
      case "version":
        process.stdout.write(`${version()}\n`);
        return 0;
      case "bot": {
        const role = parseRole(rest);
        if (role !== "all" && role !== "bot" && role !== "worker") {
          process.stderr.write(`baton bot: ${role}\n`);
          return 2;
        }
        const configRole: Role = role === "worker" ? "worker" : "bot";
        const config = loadConfig(process.env, configRole);
        const { runBot } = await import("./roles/bot.js");
        return await runBot(config, role);
      }
      case "agent": {
        const { runAgent } = await import("./agent/main.js");
        return await runAgent(process.env);
      }
      case "doctor": {
        const config = loadConfig(process.env, "doctor");
        const { runDoctor } = await import("./roles/doctor.js");
        return await runDoctor(config, process.stdout);
      }
      default:
        process.stderr.write(`baton: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof ConfigError) return printConfigError(error);
    // Last resort: one line, no stack (the stack goes to the debug log only when asked for).
    process.stderr.write(`baton: ${(error as Error).message ?? String(error)}\n`);
    if (process.env.BATON_DEBUG) process.stderr.write(`${(error as Error).stack ?? ""}\n`);
    return 1;
  }
}
