// The environment tools run with: an allow-list, so the run token (and anything else the agent's
// own environment holds) never reaches a command the model runs.

const PASS_THROUGH = [
  "PATH",
  "HOME",
  "LANG",
  "LANGUAGE",
  "LC_ALL",
  "LC_CTYPE",
  "TZ",
  "USER",
  "LOGNAME",
  "SHELL",
  "TMPDIR",
] as const;
const PROXIES = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"] as const;

/** Builds the tool environment from the agent's environment; never copies BATON_* or unknown names. */
export function toolEnvironment(source: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of PASS_THROUGH) {
    const value = source[name];
    if (value !== undefined && value !== "") env[name] = value;
  }
  for (const name of PROXIES) {
    const value = source[name];
    // A proxy URL with user:password@ carries a credential: leave it out.
    if (value !== undefined && value !== "" && !/:\/\/[^/]*@/.test(value)) env[name] = value;
  }
  env.PATH ??= "/usr/local/bin:/usr/bin:/bin";
  env.LANG ??= "C.UTF-8";
  env.TERM = "dumb";
  env.CI = "1";
  env.NO_COLOR = "1";
  env.PAGER = "cat";
  env.GIT_PAGER = "cat";
  env.GIT_TERMINAL_PROMPT = "0";
  return env;
}
