// URLs of a GitHub installation: the REST base (GITHUB_API_URL) and the git host derived from it.
// github.com serves git at https://github.com and REST at https://api.github.com; GitHub Enterprise
// Server serves both from one host, REST under /api/v3.

/** `https://api.github.com` → `https://github.com`; `https://ghe.example/api/v3` → `https://ghe.example`. */
export function gitHostUrlFromApiUrl(apiUrl: string): string {
  const url = new URL(apiUrl);
  if (url.username || url.password) throw new Error("GITHUB_API_URL must not contain credentials");
  const path = url.pathname.replace(/\/+$/, "");
  if (url.hostname === "api.github.com") return `${url.protocol}//github.com`;
  if (url.hostname.startsWith("api.") && path === "") {
    // GitHub Enterprise Cloud with data residency: api.<tenant>.ghe.com → <tenant>.ghe.com.
    return `${url.protocol}//${url.host.slice("api.".length)}`;
  }
  const base = path.endsWith("/api/v3") ? path.slice(0, -"/api/v3".length) : path;
  return `${url.protocol}//${url.host}${base}`;
}

/** The REST base without a trailing slash (octokit appends paths). */
export function normaliseApiUrl(apiUrl: string): string {
  return apiUrl.replace(/\/+$/, "");
}

export interface RepoName {
  owner: string;
  name: string;
  fullName: string;
}

const REPO_PATTERN = /^([A-Za-z0-9][A-Za-z0-9-]*)\/([A-Za-z0-9._-]+)$/;

/** Parses `owner/name`; rejects anything that could escape a URL path or a folder. */
export function parseRepo(fullName: string): RepoName {
  const match = REPO_PATTERN.exec(fullName);
  if (!match || match[2] === "." || match[2] === "..")
    throw new Error(`not a repository name (owner/name): ${fullName}`);
  return { owner: match[1]!, name: match[2]!, fullName };
}

/** `https://github.com/acme/web.git` */
export function cloneUrl(gitHostUrl: string, repo: RepoName): string {
  return `${gitHostUrl}/${repo.owner}/${repo.name}.git`;
}
