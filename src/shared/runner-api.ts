// Paths of the runner API (CONTRACT §7), shared by the bot's routes and the agent's client.
export const RUNNER_BASE_PATH = "/runner/v1";

export const runnerPaths = {
  run: `${RUNNER_BASE_PATH}/run`,
  events: `${RUNNER_BASE_PATH}/events`,
  bundle: `${RUNNER_BASE_PATH}/bundle`,
  result: `${RUNNER_BASE_PATH}/result`,
  git: `${RUNNER_BASE_PATH}/git`,
  llm: `${RUNNER_BASE_PATH}/llm/v1`,
} as const;

/** Environment variables the agent process receives (and nothing secret besides the run token). */
export const AGENT_ENV = {
  runnerUrl: "BATON_RUNNER_URL",
  runToken: "BATON_RUN_TOKEN",
  /** Alternative to runToken: a file holding the token, deleted by the agent as it starts. */
  runTokenFile: "BATON_RUN_TOKEN_FILE",
} as const;

/** Size limit of an uploaded bundle. */
export const MAX_BUNDLE_BYTES = 50 * 1024 * 1024;
