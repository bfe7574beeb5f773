// Port: the git host (GitHub or GitHub Enterprise Server). Adapter: src/adapters/github/.
// Holds Baton's credential; nothing here is ever handed to an agent.

export interface GitRemote {
  /** Upstream smart-HTTP URL, e.g. https://github.com/acme/web.git (no credentials in it). */
  url: string;
  /** Value of the Authorization header for that URL (Baton's credential, minted per repository). */
  authorization: string;
}

export interface RepoInfo {
  fullName: string;
  defaultBranch: string;
  private: boolean;
}

export interface GitHost {
  /** Upstream git access for one repository (used by the runner's read-only git proxy and the publisher). */
  gitRemote(repo: string): Promise<GitRemote>;
  /** Undefined when the repository does not exist or Baton's credential cannot see it. */
  repoInfo(repo: string): Promise<RepoInfo | undefined>;
}
