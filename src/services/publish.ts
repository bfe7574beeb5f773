// Publishing (PublishControl): an attempt's bundle -> checks -> push to its baton/* branch -> open or
// update the pull request -> `publish.succeeded` / `publish.failed` through applyTaskEvent.
// Safe to run twice: the push is a no-op when the branch already holds the commit, and the pull
// request is found before it is created (a 422 "already exists" is resolved by finding it).
import { renderPullRequest } from "../core/pr-body.js";
import { createRedactor } from "../core/redact.js";
import type { BundleStore } from "../core/ports/bundles.js";
import type { Clock } from "../core/ports/clock.js";
import type { PublishControl } from "../core/ports/effects.js";
import type { GitHost } from "../core/ports/git-host.js";
import type { TaskStore } from "../core/ports/task-store.js";
import type { AttemptResult, Task, TaskFailure } from "../core/task.js";
import type { Policy } from "../config/policy.js";
import type { Logger } from "../shared/logger.js";
import {
  GitHubAccessError,
  GitHubUnavailableError,
  GitHubValidationError,
} from "../adapters/github/errors.js";
import {
  createGitPublisher,
  GitCommandError,
  PublishRefusedError,
  type GitPublisher,
} from "../adapters/github/git.js";
import type { GitHub, PullRequestInfo } from "../adapters/github/github.js";
import { applyTaskEvent, type EffectRunner } from "./task-events.js";

export interface PublisherDeps {
  gitHost: GitHost;
  github: GitHub;
  bundles: BundleStore;
  store: TaskStore;
  effects: EffectRunner;
  policy: Policy;
  clock: Clock;
  logger: Logger;
  /** Work repositories for pushing live under `<dataDir>/publish`. */
  dataDir: string;
  /** Slack permalink of a message (the task's thread). */
  permalink?: (channel: string, ts: string) => Promise<string | undefined>;
  /** Display name of a Slack user. */
  userName?: (userId: string) => Promise<string | undefined>;
  /** Injected in tests; built from dataDir and logger otherwise. */
  git?: GitPublisher;
  /** The configured secrets (Config.secrets): removed from pull request text besides token shapes. */
  secrets?: readonly string[];
}

/** Sentence a closed pull request gets when the requester chose another attempt. */
export const CLOSED_BY_CHOICE_MARKER = "<!-- baton:closed-by-choice -->";

export function createPublisher(deps: PublisherDeps): PublishControl {
  const git = deps.git ?? createGitPublisher({ dataDir: deps.dataDir, logger: deps.logger });

  async function report(
    task: Task,
    attempt: number,
    outcome: { pr: { number: number; url: string } } | { failure: TaskFailure },
  ) {
    const at = deps.clock.now().toISOString();
    const event =
      "pr" in outcome
        ? ({ type: "publish.succeeded", at, attempt, pr: outcome.pr } as const)
        : ({ type: "publish.failed", at, attempt, failure: outcome.failure } as const);
    await applyTaskEvent({ store: deps.store, effects: deps.effects }, task.id, event);
  }

  async function requesterName(task: Task): Promise<string> {
    if (task.requester.name) return task.requester.name;
    // Slack's <@U…> syntax means nothing on GitHub: fall back to the plain user id.
    try {
      return (await deps.userName?.(task.requester.userId)) ?? task.requester.userId;
    } catch {
      return task.requester.userId;
    }
  }

  async function threadLink(task: Task): Promise<string | undefined> {
    try {
      return await deps.permalink?.(task.channelId, task.threadTs);
    } catch {
      return undefined;
    }
  }

  async function publishAttempt(
    task: Task,
    result: AttemptResult,
    log: Logger,
  ): Promise<{ number: number; url: string }> {
    const repo = task.repo;
    if (!repo)
      throw new PublishRefusedError(
        "invalid_bundle",
        "The task has no repository, so nothing was published.",
      );
    const repoPolicy = deps.policy.repos[repo] ?? {};
    let baseBranch = task.baseBranch ?? repoPolicy.baseBranch;
    if (!baseBranch) {
      const info = await deps.gitHost.repoInfo(repo);
      if (!info) throw new GitHubAccessError(`Baton cannot see ${repo} on GitHub (missing, or no access)`);
      baseBranch = info.defaultBranch;
    }
    const remote = await deps.gitHost.gitRemote(repo);
    const target = { repo, remote, baseBranch, headBranch: result.headBranch };

    const bundle = await deps.bundles.get(result.runId);
    let branchFiles: string[];
    if (bundle) {
      const pushed = await git.pushBundle({
        ...target,
        ...(result.headSha ? { expectedHeadSha: result.headSha } : {}),
        bundle,
        protectedPaths: repoPolicy.protectedPaths ?? [],
        runId: result.runId,
      });
      log.info({ status: pushed.status, headSha: pushed.headSha }, "branch published");
      branchFiles = pushed.branchFiles;
    } else {
      // The bundle is gone (expired or cleaned up): fine only if this very commit was pushed before.
      const state = await git.branchState(target);
      if (!state.headSha || state.headSha !== result.headSha) {
        throw new PublishRefusedError(
          "invalid_bundle",
          "The agent's changes are no longer available (their git bundle expired). Nothing was pushed.",
        );
      }
      branchFiles = state.branchFiles;
    }

    const redact = createRedactor([...(deps.secrets ?? []), ...deps.github.secrets()]);
    const rendered = renderPullRequest(
      {
        taskId: task.id,
        requestText: task.request.text,
        summary: result.summary,
        ...(task.plan ? { plan: { summary: task.plan.summary, steps: task.plan.steps } } : {}),
        requesterName: await requesterName(task),
        ...(await threadLink(task).then((l) => (l ? { threadPermalink: l } : {}))),
        evidence: result.evidence,
        filesChanged: branchFiles.length > 0 ? branchFiles : result.filesChanged,
        usage: {
          costUsd: task.progress.usage.costUsd,
          tokens: task.progress.usage.promptTokens + task.progress.usage.completionTokens,
        },
        attempt: result.attempt,
        attempts: task.attempts,
      },
      redact,
    );

    // The task's own pull request first (a follow-up), then any open one for the branch, then a new one.
    let pr: PullRequestInfo | undefined;
    if (task.pr && task.pr.headBranch === result.headBranch) {
      const known = await deps.github.getPullRequest(repo, task.pr.number);
      if (known && known.state === "open" && known.headRef === result.headBranch) pr = known;
    }
    if (pr) {
      // Keep the title people may have edited; the body is Baton's.
      pr = await deps.github.updatePullRequest(repo, pr, { title: pr.title, body: rendered.body });
    } else {
      const opened = await deps.github.openPullRequest(repo, {
        head: result.headBranch,
        base: baseBranch,
        title: rendered.title,
        body: rendered.body,
        draft: repoPolicy.draft ?? true,
      });
      pr = opened.created
        ? opened.pr
        : await deps.github.updatePullRequest(repo, opened.pr, {
            title: opened.pr.title,
            body: rendered.body,
          });
      log.info(
        { pr: pr.number, created: opened.created },
        opened.created ? "opened pull request" : "found pull request",
      );
    }
    return { number: pr.number, url: pr.url };
  }

  return {
    async publish(task, attempt, runId) {
      const log = deps.logger.child({ taskId: task.id, attempt, runId });
      const result = task.attemptResults.find((r) => r.attempt === attempt && r.runId === runId);
      if (!result || result.outcome !== "changes") {
        log.warn({ found: Boolean(result), outcome: result?.outcome }, "nothing to publish for this run");
        await report(task, attempt, {
          failure: {
            code: "publish_no_changes",
            message: `Attempt ${attempt} has no changes to publish, so nothing was pushed.`,
          },
        });
        return;
      }
      let outcome: { pr: { number: number; url: string } } | { failure: TaskFailure };
      try {
        outcome = { pr: await publishAttempt(task, result, log) };
      } catch (error) {
        outcome = { failure: toFailure(error) };
        const detail =
          error instanceof GitHubUnavailableError || error instanceof GitHubAccessError
            ? error.detail
            : undefined;
        log.warn({ err: error, code: outcome.failure.code, ...(detail ? { detail } : {}) }, "publish failed");
      }
      await report(task, attempt, outcome);
    },

    async closePullRequest(task, prNumber) {
      if (!task.repo) return;
      const log = deps.logger.child({ taskId: task.id, pr: prNumber });
      const result = await deps.github.closePullRequest(task.repo, prNumber, {
        text: `Baton closed this pull request: another attempt of ${task.id} was chosen in Slack.`,
        marker: CLOSED_BY_CHOICE_MARKER,
      });
      log.info({ result }, "closed earlier pull request");
    },
  };
}

/** One clear sentence per failure, never a secret (git output is redacted by the git publisher). */
export function toFailure(error: unknown): TaskFailure {
  if (error instanceof PublishRefusedError) return { code: "publish_refused", message: error.message };
  if (error instanceof GitHubUnavailableError) {
    return {
      code: "github_unavailable",
      message: `${error.message}; the changes were not published. Retry the task to try again.`,
    };
  }
  if (error instanceof GitHubAccessError) {
    return { code: "github_access", message: `${error.message}. Nothing was published.` };
  }
  if (error instanceof GitHubValidationError) {
    return { code: "github_refused", message: `${error.message}. Nothing was published.` };
  }
  if (error instanceof GitCommandError) {
    return { code: "publish_error", message: `Publishing failed in git (${error.message}).` };
  }
  return { code: "publish_error", message: "Publishing failed unexpectedly; the logs have the details." };
}
