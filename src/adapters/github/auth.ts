// Baton's GitHub credential: a static token (GITHUB_TOKEN) or a GitHub App whose installation tokens
// are minted per repository, limited to that repository and to contents + pull requests, and cached
// until shortly before they expire.
import { createPrivateKey, createSign, type KeyObject } from "node:crypto";
import { z } from "zod";
import type { Clock } from "../../core/ports/clock.js";
import type { Logger } from "../../shared/logger.js";
import { classifyGitHubError, GitHubAccessError, statusOf } from "./errors.js";
import type { OctokitFactory } from "./octokit.js";
import { parseRepo } from "./urls.js";

export type GitHubAuthOptions =
  { kind: "token"; token: string } | { kind: "app"; appId: string; privateKey: string };

export interface GitHubCredentials {
  readonly kind: "token" | "app";
  /** A token that can write contents and pull requests of `repo` (owner/name). */
  tokenFor(repo: string): Promise<string>;
  /** Every token value handed out so far (for redaction). */
  knownSecrets(): string[];
  /** Authenticated identity: the user's login or the app's slug (for `baton doctor`). */
  whoAmI(): Promise<string>;
}

/** Installation tokens live an hour; refresh this long before `expires_at`. */
export const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
/** Permissions Baton asks for, nothing more. */
export const INSTALLATION_PERMISSIONS = { contents: "write", pull_requests: "write" } as const;

const AccessTokenAnswer = z.object({ token: z.string().min(1), expires_at: z.string() });
const InstallationAnswer = z.object({ id: z.number().int().positive() });
const UserAnswer = z.object({ login: z.string() });
const AppAnswer = z.object({ slug: z.string().optional(), name: z.string().optional() });

export function createCredentials(
  options: GitHubAuthOptions,
  deps: { octokit: OctokitFactory; clock: Clock; logger: Logger },
): GitHubCredentials {
  return options.kind === "token"
    ? createTokenCredentials(options.token, deps)
    : createAppCredentials(options.appId, options.privateKey, deps);
}

function createTokenCredentials(token: string, deps: { octokit: OctokitFactory }): GitHubCredentials {
  return {
    kind: "token",
    tokenFor: async (repo) => {
      parseRepo(repo);
      return token;
    },
    knownSecrets: () => [token],
    whoAmI: async () => {
      try {
        const res = await deps.octokit(token).request("GET /user");
        return UserAnswer.parse(res.data).login;
      } catch (error) {
        throw classifyGitHubError(error, "reading the authenticated user");
      }
    },
  };
}

/** RS256 JWT for the app itself: issued 60 s in the past against clock drift, valid 9 minutes (max 10). */
export function createAppJwt(appId: string, key: KeyObject, now: Date): string {
  const iat = Math.floor(now.getTime() / 1000) - 60;
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${encode({ alg: "RS256", typ: "JWT" })}.${encode({ iat, exp: iat + 600 - 60, iss: appId })}`;
  const signature = createSign("RSA-SHA256").update(unsigned).sign(key).toString("base64url");
  return `${unsigned}.${signature}`;
}

function createAppCredentials(
  appId: string,
  privateKeyPem: string,
  deps: { octokit: OctokitFactory; clock: Clock; logger: Logger },
): GitHubCredentials {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch {
    // Never echo the key material.
    throw new GitHubAccessError("GITHUB_APP_PRIVATE_KEY is not a readable PEM private key");
  }
  const appClient = deps.octokit(undefined);
  const jwtHeaders = () => ({ authorization: `Bearer ${createAppJwt(appId, key, deps.clock.now())}` });

  const installations = new Map<string, number>();
  const tokens = new Map<string, { token: string; expiresAt: number }>();
  const inFlight = new Map<string, Promise<string>>();
  const issued = new Set<string>();

  async function installationFor(owner: string, name: string): Promise<number> {
    const cacheKey = `${owner}/${name}`.toLowerCase();
    const cached = installations.get(cacheKey);
    if (cached !== undefined) return cached;
    try {
      const res = await appClient.request("GET /repos/{owner}/{repo}/installation", {
        owner,
        repo: name,
        headers: jwtHeaders(),
      });
      const id = InstallationAnswer.parse(res.data).id;
      installations.set(cacheKey, id);
      return id;
    } catch (error) {
      if (statusOf(error) === 404) {
        throw new GitHubAccessError(
          `The GitHub App is not installed on ${owner}/${name} (or cannot see it)`,
          404,
        );
      }
      throw classifyGitHubError(error, `finding the GitHub App installation for ${owner}/${name}`);
    }
  }

  async function mint(repo: string): Promise<string> {
    const { owner, name } = parseRepo(repo);
    for (let attempt = 1; ; attempt++) {
      const installationId = await installationFor(owner, name);
      try {
        const res = await appClient.request("POST /app/installations/{installation_id}/access_tokens", {
          installation_id: installationId,
          repositories: [name],
          permissions: { ...INSTALLATION_PERMISSIONS },
          headers: jwtHeaders(),
        });
        const answer = AccessTokenAnswer.parse(res.data);
        const expiresAt = Date.parse(answer.expires_at);
        tokens.set(repo.toLowerCase(), {
          token: answer.token,
          expiresAt: Number.isNaN(expiresAt) ? 0 : expiresAt,
        });
        issued.add(answer.token);
        deps.logger.info(
          { repo, installationId, expiresAt: answer.expires_at },
          "minted GitHub installation token",
        );
        return answer.token;
      } catch (error) {
        // The app may have been reinstalled (new installation id): look it up again once.
        if ((statusOf(error) === 404 || statusOf(error) === 401) && attempt === 1) {
          installations.delete(`${owner}/${name}`.toLowerCase());
          continue;
        }
        throw classifyGitHubError(error, `minting a GitHub App token for ${repo}`);
      }
    }
  }

  return {
    kind: "app",
    tokenFor: async (repo) => {
      const cacheKey = repo.toLowerCase();
      const cached = tokens.get(cacheKey);
      if (cached && cached.expiresAt - TOKEN_REFRESH_MARGIN_MS > deps.clock.now().getTime())
        return cached.token;
      // One mint per repository at a time, however many publishes ask at once.
      const pending = inFlight.get(cacheKey);
      if (pending) return await pending;
      const promise = mint(repo).finally(() => inFlight.delete(cacheKey));
      inFlight.set(cacheKey, promise);
      return await promise;
    },
    knownSecrets: () => [...issued],
    whoAmI: async () => {
      try {
        const res = await appClient.request("GET /app", { headers: jwtHeaders() });
        const app = AppAnswer.parse(res.data);
        return app.slug ?? app.name ?? `app ${appId}`;
      } catch (error) {
        throw classifyGitHubError(error, "reading the GitHub App");
      }
    },
  };
}
