// One place that builds octokit clients: base URL (GitHub Enterprise Server too), retries of 5xx with
// backoff, GitHub's recommended throttling of writes, and logs through Baton's logger.
import { Octokit } from "octokit";
import type { Logger } from "../../shared/logger.js";
import { normaliseApiUrl } from "./urls.js";

export type GitHubClient = InstanceType<typeof Octokit>;
/** A client authenticated with `token`, or unauthenticated (callers then pass their own header). */
export type OctokitFactory = (token: string | undefined) => GitHubClient;

export interface OctokitOptions {
  apiUrl: string;
  logger: Logger;
  /** Retries of 5xx and network errors (octokit's retry plugin): `retries` times, base delay squared-growing. */
  retry?: { retries: number; baseDelayMs: number };
  /** GitHub's secondary-rate-limit guidance (writes one at a time, a second apart). Default on. */
  throttle?: boolean;
}

export function createOctokitFactory(options: OctokitOptions): OctokitFactory {
  const retry = options.retry ?? { retries: 3, baseDelayMs: 1000 };
  const log = {
    debug: (message: string) => options.logger.debug({ component: "octokit" }, message),
    info: (message: string) => options.logger.debug({ component: "octokit" }, message),
    warn: (message: string) => options.logger.warn({ component: "octokit" }, message),
    error: (message: string) => options.logger.error({ component: "octokit" }, message),
  };
  const clients = new Map<string, GitHubClient>();
  return (token) => {
    const key = token ?? "";
    const cached = clients.get(key);
    if (cached) return cached;
    const client = new Octokit({
      ...(token ? { auth: token } : {}),
      baseUrl: normaliseApiUrl(options.apiUrl),
      userAgent: "baton",
      log,
      retry: { retries: retry.retries, retryAfterBaseValue: retry.baseDelayMs },
      throttle: {
        enabled: options.throttle ?? true,
        // Primary and secondary rate limits: wait once as GitHub asks, then give up.
        onRateLimit: (_after: number, _opts: unknown, _octokit: unknown, retryCount: number) =>
          retryCount < 1,
        onSecondaryRateLimit: (_after: number, _opts: unknown, _octokit: unknown, retryCount: number) =>
          retryCount < 1,
      },
    });
    // Installation tokens rotate hourly: keep only the live ones.
    if (clients.size > 100) clients.clear();
    clients.set(key, client);
    return client;
  };
}
