// Errors of the GitHub adapter, by what the caller should do about them.

/** GitHub did not answer usefully after retries (5xx, network): try again later. */
export class GitHubUnavailableError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** Technical detail for the logs (e.g. git's last stderr lines), not for the thread. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = "GitHubUnavailableError";
  }
}

/** Baton's credential cannot do this (401/403, app not installed, repository not visible). */
export class GitHubAccessError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** Technical detail for the logs, not for the thread. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = "GitHubAccessError";
  }
}

/** GitHub refused the request as invalid (422) for a reason Baton cannot resolve itself. */
export class GitHubValidationError extends Error {
  constructor(
    message: string,
    readonly details: string[],
  ) {
    super(message);
    this.name = "GitHubValidationError";
  }
}

/** HTTP status of an octokit RequestError (or undefined for anything else). */
export function statusOf(error: unknown): number | undefined {
  if (typeof error === "object" && error !== null && "status" in error) {
    const status = (error as { status: unknown }).status;
    if (typeof status === "number") return status;
  }
  return undefined;
}

/** Maps an octokit failure to the adapter's taxonomy; `what` says what Baton was doing. */
export function classifyGitHubError(error: unknown, what: string): Error {
  if (error instanceof GitHubUnavailableError || error instanceof GitHubAccessError) return error;
  if (error instanceof GitHubValidationError) return error;
  const status = statusOf(error);
  if (status === 401 || status === 403 || status === 404) {
    return new GitHubAccessError(
      `GitHub refused ${what} (HTTP ${status}): check Baton's GitHub credential and its access`,
      status,
    );
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return new GitHubValidationError(`GitHub refused ${what} (HTTP ${status})`, validationDetails(error));
  }
  const reason = status === undefined || status === 0 ? "no answer" : `HTTP ${status}`;
  return new GitHubUnavailableError(`GitHub did not answer while ${what} (${reason}, after retries)`, status);
}

/** The `message` and `errors[].message` strings of a 422 answer. */
export function validationDetails(error: unknown): string[] {
  const data = (error as { response?: { data?: unknown } }).response?.data;
  if (typeof data !== "object" || data === null) return [];
  const out: string[] = [];
  const message = (data as { message?: unknown }).message;
  if (typeof message === "string") out.push(message);
  const errors = (data as { errors?: unknown }).errors;
  if (Array.isArray(errors)) {
    for (const e of errors) {
      if (typeof e === "string") out.push(e);
      else if (typeof e === "object" && e !== null) {
        const m = (e as { message?: unknown }).message;
        const field = (e as { field?: unknown }).field;
        const code = (e as { code?: unknown }).code;
        if (typeof m === "string") out.push(m);
        else if (typeof field === "string")
          out.push(`${field} ${typeof code === "string" ? code : "invalid"}`);
      }
    }
  }
  return out;
}
