// The GitHub adapter: GitHost (upstream git access for one repository) plus the pull-request operations
// the publisher needs. Every write is idempotent: "find before create", a 422 "already exists" is
// resolved by finding the pull request, closing an already closed one is a no-op.
import { z } from "zod";
import type { Clock } from "../../core/ports/clock.js";
import type { GitHost, GitRemote, RepoInfo } from "../../core/ports/git-host.js";
import type { Logger } from "../../shared/logger.js";
import { createCredentials, type GitHubAuthOptions, type GitHubCredentials } from "./auth.js";
import {
  classifyGitHubError,
  GitHubAccessError,
  GitHubValidationError,
  statusOf,
  validationDetails,
} from "./errors.js";
import { createOctokitFactory, type GitHubClient, type OctokitFactory } from "./octokit.js";
import { cloneUrl, gitHostUrlFromApiUrl, parseRepo } from "./urls.js";

export interface PullRequestInfo {
  number: number;
  url: string;
  state: "open" | "closed";
  merged: boolean;
  draft: boolean;
  title: string;
  body: string;
  headRef: string;
  headSha: string;
  baseRef: string;
}

export interface OpenPullRequestInput {
  head: string;
  base: string;
  title: string;
  body: string;
  draft: boolean;
}

export interface GitHub extends GitHost {
  readonly gitHostUrl: string;
  /** The open pull request whose head is `owner:branch` in the repository itself, if any. */
  findOpenPullRequest(repo: string, headBranch: string): Promise<PullRequestInfo | undefined>;
  getPullRequest(repo: string, number: number): Promise<PullRequestInfo | undefined>;
  /** Opens the pull request, or finds the one that already exists for the head (`created: false`). */
  openPullRequest(
    repo: string,
    input: OpenPullRequestInput,
  ): Promise<{ pr: PullRequestInfo; created: boolean }>;
  /** Sets title and body; no request when both are already as wanted. */
  updatePullRequest(
    repo: string,
    pr: PullRequestInfo,
    changes: { title: string; body: string },
  ): Promise<PullRequestInfo>;
  /** Comments (once, recognised by `marker`) and closes; a closed or merged pull request is left as it is. */
  closePullRequest(
    repo: string,
    number: number,
    comment: { text: string; marker: string },
  ): Promise<"closed" | "already_closed" | "missing">;
  /** Every credential value handed out so far (for log redaction by the composition root). */
  secrets(): string[];
  /** Authenticated identity, for `baton doctor`. */
  whoAmI(): Promise<string>;
}

export interface GitHubOptions {
  apiUrl: string;
  auth: GitHubAuthOptions;
  clock: Clock;
  logger: Logger;
  /** Retries of 5xx and network errors with squared backoff (default 3 retries, 1 s base). */
  retry?: { retries: number; baseDelayMs: number };
  /** GitHub's write throttling (default on; tests turn it off for speed). */
  throttle?: boolean;
}

const PullAnswer = z.object({
  number: z.number().int().positive(),
  html_url: z.string(),
  state: z.enum(["open", "closed"]),
  merged: z.boolean().nullish(),
  merged_at: z.string().nullish(),
  draft: z.boolean().nullish(),
  title: z.string(),
  body: z.string().nullish(),
  head: z.object({ ref: z.string(), sha: z.string(), repo: z.object({ full_name: z.string() }).nullish() }),
  base: z.object({ ref: z.string() }),
});
const RepoAnswer = z.object({ full_name: z.string(), default_branch: z.string(), private: z.boolean() });
const CommentAnswer = z.object({ body: z.string().nullish() });

function toInfo(raw: unknown): PullRequestInfo {
  const p = PullAnswer.parse(raw);
  return {
    number: p.number,
    url: p.html_url,
    state: p.state,
    merged: Boolean(p.merged) || Boolean(p.merged_at),
    draft: Boolean(p.draft),
    title: p.title,
    body: p.body ?? "",
    headRef: p.head.ref,
    headSha: p.head.sha,
    baseRef: p.base.ref,
  };
}

export function createGitHub(options: GitHubOptions): GitHub {
  const octokit: OctokitFactory = createOctokitFactory({
    apiUrl: options.apiUrl,
    logger: options.logger,
    ...(options.retry ? { retry: options.retry } : {}),
    ...(options.throttle !== undefined ? { throttle: options.throttle } : {}),
  });
  const credentials: GitHubCredentials = createCredentials(options.auth, {
    octokit,
    clock: options.clock,
    logger: options.logger,
  });
  const gitHostUrl = gitHostUrlFromApiUrl(options.apiUrl);

  const clientFor = async (repo: string): Promise<GitHubClient> => octokit(await credentials.tokenFor(repo));

  async function findOpen(repo: string, headBranch: string): Promise<PullRequestInfo | undefined> {
    const { owner, name, fullName } = parseRepo(repo);
    try {
      const client = await clientFor(repo);
      const res = await client.request("GET /repos/{owner}/{repo}/pulls", {
        owner,
        repo: name,
        state: "open",
        head: `${owner}:${headBranch}`,
        per_page: 100,
      });
      const pulls = z.array(z.unknown()).parse(res.data).map(toInfo);
      // Only a pull request from this repository's own branch counts (never a fork's same-named branch).
      return pulls.find((p) => p.headRef === headBranch && p.state === "open");
    } catch (error) {
      throw classifyGitHubError(error, `listing pull requests of ${fullName}`);
    }
  }

  async function getPull(repo: string, number: number): Promise<PullRequestInfo | undefined> {
    const { owner, name } = parseRepo(repo);
    try {
      const client = await clientFor(repo);
      const res = await client.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", {
        owner,
        repo: name,
        pull_number: number,
      });
      return toInfo(res.data);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw classifyGitHubError(error, `reading pull request #${number} of ${repo}`);
    }
  }

  return {
    gitHostUrl,

    async gitRemote(repo: string): Promise<GitRemote> {
      const parsed = parseRepo(repo);
      const token = await credentials.tokenFor(repo);
      return {
        url: cloneUrl(gitHostUrl, parsed),
        authorization: `Basic ${Buffer.from(`x-access-token:${token}`).toString("base64")}`,
      };
    },

    async repoInfo(repo: string): Promise<RepoInfo | undefined> {
      const { owner, name } = parseRepo(repo);
      try {
        const client = await clientFor(repo);
        const res = await client.request("GET /repos/{owner}/{repo}", { owner, repo: name });
        const r = RepoAnswer.parse(res.data);
        return { fullName: r.full_name, defaultBranch: r.default_branch, private: r.private };
      } catch (error) {
        if (error instanceof GitHubAccessError || statusOf(error) === 404) return undefined;
        throw classifyGitHubError(error, `reading ${repo}`);
      }
    },

    findOpenPullRequest: findOpen,

    getPullRequest: getPull,

    async openPullRequest(repo, input) {
      const existing = await findOpen(repo, input.head);
      if (existing) return { pr: existing, created: false };
      const { owner, name } = parseRepo(repo);
      const client = await clientFor(repo);
      const create = async (draft: boolean) =>
        toInfo(
          (
            await client.request("POST /repos/{owner}/{repo}/pulls", {
              owner,
              repo: name,
              head: input.head,
              base: input.base,
              title: input.title,
              body: input.body,
              draft,
            })
          ).data,
        );
      try {
        return { pr: await create(input.draft), created: true };
      } catch (error) {
        if (statusOf(error) !== 422) throw classifyGitHubError(error, `opening a pull request on ${repo}`);
        const details = validationDetails(error).join(" ");
        if (/already exists/i.test(details)) {
          // A concurrent publisher (or a lost response to our own create) won: use that pull request.
          const found = await findOpen(repo, input.head);
          if (found) return { pr: found, created: false };
        }
        if (input.draft && /draft/i.test(details)) {
          // Draft pull requests are not available on every plan: open a regular one instead.
          options.logger.warn({ repo }, "draft pull requests are not supported here; opening a regular one");
          try {
            return { pr: await create(false), created: true };
          } catch (retryError) {
            throw classifyGitHubError(retryError, `opening a pull request on ${repo}`);
          }
        }
        throw new GitHubValidationError(
          `GitHub refused to open the pull request${details ? `: ${details}` : ""}`,
          validationDetails(error),
        );
      }
    },

    async updatePullRequest(repo, pr, changes) {
      if (pr.title === changes.title && pr.body === changes.body) return pr;
      const { owner, name } = parseRepo(repo);
      try {
        const client = await clientFor(repo);
        const res = await client.request("PATCH /repos/{owner}/{repo}/pulls/{pull_number}", {
          owner,
          repo: name,
          pull_number: pr.number,
          title: changes.title,
          body: changes.body,
        });
        return toInfo(res.data);
      } catch (error) {
        throw classifyGitHubError(error, `updating pull request #${pr.number} of ${repo}`);
      }
    },

    async closePullRequest(repo, number, comment) {
      const { owner, name } = parseRepo(repo);
      const pr = await getPull(repo, number);
      if (!pr) return "missing";
      if (pr.state === "closed") return "already_closed";
      try {
        const client = await clientFor(repo);
        const comments = await client.paginate("GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {
          owner,
          repo: name,
          issue_number: number,
          per_page: 100,
        });
        const already = comments.some((c) => (CommentAnswer.parse(c).body ?? "").includes(comment.marker));
        if (!already) {
          await client.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
            owner,
            repo: name,
            issue_number: number,
            body: `${comment.text}\n\n${comment.marker}`,
          });
        }
        await client.request("PATCH /repos/{owner}/{repo}/pulls/{pull_number}", {
          owner,
          repo: name,
          pull_number: number,
          state: "closed",
        });
        return "closed";
      } catch (error) {
        throw classifyGitHubError(error, `closing pull request #${number} of ${repo}`);
      }
    },

    secrets: () => credentials.knownSecrets(),
    whoAmI: () => credentials.whoAmI(),
  };
}
