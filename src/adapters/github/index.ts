// The GitHub adapter's entry points for the composition root: the client (GitHost + pull requests)
// built from the loaded configuration, and the git publisher.
import type { Config } from "../../config/load.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Logger } from "../../shared/logger.js";
import type { GitHubAuthOptions } from "./auth.js";
import { createGitHub, type GitHub } from "./github.js";

export { createGitHub, type GitHub, type PullRequestInfo, type OpenPullRequestInput } from "./github.js";
export { createGitPublisher, PublishRefusedError, type GitPublisher, type PushOutcome } from "./git.js";
export { GitHubAccessError, GitHubUnavailableError, GitHubValidationError } from "./errors.js";
export { gitHostUrlFromApiUrl } from "./urls.js";
export type { GitHubAuthOptions } from "./auth.js";

/** The adapter for `config.github`, or undefined when no GitHub credential is configured. */
export function createGitHubFromConfig(
  config: Pick<Config, "github">,
  deps: { clock: Clock; logger: Logger },
): GitHub | undefined {
  const github = config.github;
  if (!github) return undefined;
  let auth: GitHubAuthOptions;
  if (github.kind === "app") {
    if (!github.appId || !github.privateKey) return undefined;
    auth = { kind: "app", appId: github.appId, privateKey: github.privateKey };
  } else {
    if (!github.token) return undefined;
    auth = { kind: "token", token: github.token };
  }
  return createGitHub({ apiUrl: github.apiUrl, auth, clock: deps.clock, logger: deps.logger });
}
