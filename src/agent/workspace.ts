// Path rules for tools: every path the model names is relative to the workspace and stays inside it
// (no absolute paths, no `..` escapes, no symlink escapes, nothing under `.git/` for writes).
import { realpathSync, existsSync } from "node:fs";
import path from "node:path";

export class PathError extends Error {
  override readonly name = "PathError";
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** The nearest existing ancestor's real path, so a symlinked folder cannot lead outside the root. */
function realExistingPrefix(target: string): string {
  let current = target;
  const rest: string[] = [];
  while (!existsSync(current)) {
    const parent = path.dirname(current);
    if (parent === current) break;
    rest.unshift(path.basename(current));
    current = parent;
  }
  return path.join(realpathSync(current), ...rest);
}

export interface ResolveOptions {
  /** Refuse paths under `.git/` (for writes). */
  write?: boolean;
}

/** Resolves a model-supplied relative path to an absolute path inside `root`, or throws PathError. */
export function resolveInWorkspace(root: string, relative: string, options: ResolveOptions = {}): string {
  const cleaned = relative.trim();
  if (cleaned === "") throw new PathError("path is empty");
  if (cleaned.includes("\0")) throw new PathError(`path contains a NUL byte: ${JSON.stringify(relative)}`);
  if (path.isAbsolute(cleaned)) throw new PathError(`path must be relative to the workspace: ${cleaned}`);
  const realRoot = realpathSync(root);
  const resolved = path.resolve(realRoot, cleaned);
  if (!isInside(realRoot, resolved)) throw new PathError(`path escapes the workspace: ${cleaned}`);
  const real = realExistingPrefix(resolved);
  if (!isInside(realRoot, real))
    throw new PathError(`path leads outside the workspace through a symlink: ${cleaned}`);
  if (options.write === true) {
    const rel = path.relative(realRoot, real);
    if (rel === ".git" || rel.startsWith(`.git${path.sep}`))
      throw new PathError(`refusing to write inside .git: ${cleaned}`);
  }
  return real;
}

/** Workspace-relative form of an absolute path, with forward slashes. */
export function toRelative(root: string, absolute: string): string {
  return path.relative(realpathSync(root), absolute).split(path.sep).join("/");
}
