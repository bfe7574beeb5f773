// Keeps the run token out of reach of the commands the model runs. A process's initial environment
// stays readable at /proc/<pid>/environ by every process of the same user — including the agent's
// own tools — however the variable is removed in Node. So the agent re-executes itself (execve
// replaces the environment block) with the token moved to a private file, which the new image reads
// and deletes before any tool runs.
import { mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { AGENT_ENV } from "../shared/runner-api.js";

export const TOKEN_FILE_ENV = AGENT_ENV.runTokenFile;

type Execve = (file: string, args?: readonly string[], env?: Record<string, string>) => never;

/**
 * If the token is still in the environment, moves it to a 0600 file and re-executes this process
 * without it (does not return). Without `process.execve` (Node < 22.15) the environment stays as is.
 */
export function reexecWithoutToken(env: NodeJS.ProcessEnv): void {
  const token = env[AGENT_ENV.runToken];
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (!token || typeof execve !== "function" || env[TOKEN_FILE_ENV]) return;
  const dir = mkdtempSync(path.join(tmpdir(), "baton-token-"));
  const file = path.join(dir, "token");
  writeFileSync(file, token, { mode: 0o600 });
  const next: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (key !== AGENT_ENV.runToken && value !== undefined) next[key] = value;
  }
  next[TOKEN_FILE_ENV] = file;
  const args = [
    process.execPath,
    "--disable-warning=ExperimentalWarning",
    ...process.execArgv,
    ...process.argv.slice(1),
  ];
  execve.call(process, process.execPath, args, next);
}

/**
 * In the re-executed agent (or one started by the local executor, which hands the token over the
 * same way): reads the token file into the returned environment and deletes it. */
export function takeTokenFromFile(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const file = env[TOKEN_FILE_ENV];
  if (!file) return env;
  let token: string | undefined;
  try {
    token = readFileSync(file, "utf8").trim();
  } finally {
    rmSync(file, { force: true });
    try {
      rmdirSync(path.dirname(file)); // the private folder it was written to, when empty
    } catch {
      // Not empty or not ours: leave it.
    }
  }
  const next: NodeJS.ProcessEnv = { ...env };
  next[AGENT_ENV.runToken] = token;
  delete next[TOKEN_FILE_ENV];
  delete process.env[TOKEN_FILE_ENV];
  return next;
}
