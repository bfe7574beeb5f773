// Reads the target repository's AGENTS.md files, from the root down to the working folder, each
// and all together size-capped. Their content is repository data, shown to the model as such.
import { lstatSync, readFileSync } from "node:fs";
import path from "node:path";

export const MAX_AGENTS_MD_BYTES = 32 * 1024;
export const MAX_AGENTS_MD_TOTAL_BYTES = 64 * 1024;

export interface AgentsMdFile {
  path: string;
  content: string;
  truncated: boolean;
}

export function readAgentsMd(repoRoot: string, workingFolder = "."): AgentsMdFile[] {
  const parts = path
    .normalize(workingFolder)
    .split(path.sep)
    .filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return [];
  const folders = [""];
  for (let i = 0; i < parts.length; i++) folders.push(parts.slice(0, i + 1).join("/"));
  const files: AgentsMdFile[] = [];
  let total = 0;
  for (const folder of folders) {
    const rel = folder === "" ? "AGENTS.md" : `${folder}/AGENTS.md`;
    const abs = path.join(repoRoot, rel);
    let size: number;
    try {
      const stat = lstatSync(abs);
      // A symlink could point anywhere on the machine: only regular files count.
      if (!stat.isFile()) continue;
      size = stat.size;
    } catch {
      continue;
    }
    const budget = Math.min(MAX_AGENTS_MD_BYTES, MAX_AGENTS_MD_TOTAL_BYTES - total);
    if (budget <= 0) break;
    const raw = readFileSync(abs);
    const truncated = size > budget;
    const content = raw.subarray(0, budget).toString("utf8");
    total += Math.min(size, budget);
    files.push({ path: rel, content, truncated });
  }
  return files;
}
