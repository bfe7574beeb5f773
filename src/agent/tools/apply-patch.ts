// The `apply_patch` tool: parses the `*** Begin Patch` grammar (add, update with context hunks,
// delete, move) and applies it all-or-nothing inside the workspace. Mismatches come back to the
// model as clear errors naming the file and the lines that were not found.
import { existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PathError, resolveInWorkspace, toRelative } from "../workspace.js";

export class PatchError extends Error {
  override readonly name = "PatchError";
}

export interface UpdateChunk {
  /** Text after `@@`, a line to find before the chunk's old lines. */
  context: string | null;
  oldLines: string[];
  newLines: string[];
  /** The chunk's lines in order: context lines keep the file's own text when applied. */
  ops: { op: " " | "-" | "+"; text: string }[];
  /** The chunk ends with `*** End of File`: its old lines sit at the end of the file. */
  endOfFile: boolean;
}

export type PatchHunk =
  | { kind: "add"; path: string; contents: string }
  | { kind: "delete"; path: string }
  | { kind: "update"; path: string; moveTo: string | null; chunks: UpdateChunk[] };

const BEGIN = "*** Begin Patch";
const END = "*** End Patch";
const ADD = "*** Add File: ";
const DELETE = "*** Delete File: ";
const UPDATE = "*** Update File: ";
const MOVE = "*** Move to: ";
const EOF_MARKER = "*** End of File";

function isHunkHeader(line: string): boolean {
  return line.startsWith(ADD) || line.startsWith(DELETE) || line.startsWith(UPDATE) || line === END;
}

/** Parses a patch into hunks; throws PatchError with the offending line number. */
export function parsePatch(text: string): PatchHunk[] {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  // Tolerate surrounding blank lines, nothing else.
  while (lines.length > 0 && lines[0]!.trim() === "") lines.shift();
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === "") lines.pop();
  if (lines[0]?.trim() !== BEGIN) throw new PatchError(`the first line of the patch must be '${BEGIN}'`);
  if (lines[lines.length - 1]?.trim() !== END)
    throw new PatchError(`the last line of the patch must be '${END}'`);
  const hunks: PatchHunk[] = [];
  let i = 1;
  const last = lines.length - 1;
  while (i < last) {
    const line = lines[i]!;
    if (line.startsWith(ADD)) {
      const file = line.slice(ADD.length).trim();
      i++;
      const content: string[] = [];
      while (i < last && !isHunkHeader(lines[i]!)) {
        const l = lines[i]!;
        if (!l.startsWith("+"))
          throw new PatchError(
            `line ${i + 1}: every line of an added file must start with '+': ${JSON.stringify(l)}`,
          );
        content.push(l.slice(1));
        i++;
      }
      hunks.push({
        kind: "add",
        path: file,
        contents: content.length === 0 ? "" : `${content.join("\n")}\n`,
      });
    } else if (line.startsWith(DELETE)) {
      hunks.push({ kind: "delete", path: line.slice(DELETE.length).trim() });
      i++;
    } else if (line.startsWith(UPDATE)) {
      const file = line.slice(UPDATE.length).trim();
      i++;
      let moveTo: string | null = null;
      if (i < last && lines[i]!.startsWith(MOVE)) {
        moveTo = lines[i]!.slice(MOVE.length).trim();
        i++;
      }
      const chunks: UpdateChunk[] = [];
      let current: UpdateChunk | null = null;
      while (i < last && !isHunkHeader(lines[i]!)) {
        const l = lines[i]!;
        if (l === "@@" || l.startsWith("@@ ")) {
          current = {
            context: l === "@@" ? null : l.slice(3),
            oldLines: [],
            newLines: [],
            ops: [],
            endOfFile: false,
          };
          chunks.push(current);
        } else if (l === EOF_MARKER) {
          if (current === null)
            throw new PatchError(`line ${i + 1}: '${EOF_MARKER}' before any change in ${file}`);
          current.endOfFile = true;
          current = null;
        } else {
          if (current === null) {
            // The first chunk may omit its `@@` line.
            if (chunks.length > 0)
              throw new PatchError(`line ${i + 1}: expected '@@' to start a new chunk in ${file}`);
            current = { context: null, oldLines: [], newLines: [], ops: [], endOfFile: false };
            chunks.push(current);
          }
          const marker = l[0];
          const body = l.slice(1);
          if (l === "" || marker === " ") {
            current.oldLines.push(body);
            current.newLines.push(body);
            current.ops.push({ op: " ", text: body });
          } else if (marker === "-") {
            current.oldLines.push(body);
            current.ops.push({ op: "-", text: body });
          } else if (marker === "+") {
            current.newLines.push(body);
            current.ops.push({ op: "+", text: body });
          } else {
            throw new PatchError(
              `line ${i + 1}: a change line must start with ' ', '-' or '+': ${JSON.stringify(l)}`,
            );
          }
        }
        i++;
      }
      if (chunks.length === 0 && moveTo === null)
        throw new PatchError(`the update of ${file} has no changes`);
      hunks.push({ kind: "update", path: file, moveTo, chunks });
    } else if (line.trim() === "") {
      i++;
    } else {
      throw new PatchError(
        `line ${i + 1}: expected '${ADD}', '${DELETE}', '${UPDATE}' or '${END}', got ${JSON.stringify(line)}`,
      );
    }
  }
  if (hunks.length === 0) throw new PatchError("the patch contains no file operations");
  return hunks;
}

type Normalize = (s: string) => string;
const NORMALIZERS: Normalize[] = [(s) => s, (s) => s.trimEnd(), (s) => s.trim()];

/** First index ≥ start where `pattern` occurs (exact, then ignoring trailing, then all surrounding whitespace). */
function seekSequence(lines: string[], pattern: string[], start: number, endOfFile: boolean): number | null {
  if (pattern.length === 0) return start;
  if (pattern.length > lines.length) return null;
  const lastStart = lines.length - pattern.length;
  const starts: number[] = [];
  if (endOfFile) starts.push(lastStart);
  for (let s = start; s <= lastStart; s++) starts.push(s);
  for (const norm of NORMALIZERS) {
    for (const s of starts) {
      let ok = true;
      for (let k = 0; k < pattern.length; k++) {
        if (norm(lines[s + k]!) !== norm(pattern[k]!)) {
          ok = false;
          break;
        }
      }
      if (ok) return s;
    }
  }
  return null;
}

/** Applies update chunks to a file's text; throws PatchError when a chunk does not match. */
export function applyChunks(original: string, chunks: UpdateChunk[], displayPath: string): string {
  const eol = original.includes("\r\n") ? "\r\n" : "\n";
  const lines = original.split(eol);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const replacements: { start: number; remove: number; insert: string[] }[] = [];
  let index = 0;
  for (const chunk of chunks) {
    if (chunk.context !== null) {
      const at = seekSequence(lines, [chunk.context], index, false);
      if (at === null)
        throw new PatchError(
          `could not find the context line ${JSON.stringify(chunk.context)} in ${displayPath}`,
        );
      index = at + 1;
    }
    if (chunk.oldLines.length === 0) {
      // A pure addition goes after its context line, or at the end of the file without one.
      const at = chunk.context !== null && !chunk.endOfFile ? index : lines.length;
      replacements.push({ start: at, remove: 0, insert: chunk.newLines });
      continue;
    }
    let pattern = chunk.oldLines;
    let ops = chunk.ops;
    let found = seekSequence(lines, pattern, index, chunk.endOfFile);
    const lastOp = ops[ops.length - 1];
    if (found === null && lastOp?.op === " " && lastOp.text === "") {
      // A trailing blank context line often stands for the end of the file.
      pattern = pattern.slice(0, -1);
      ops = ops.slice(0, -1);
      found = seekSequence(lines, pattern, index, chunk.endOfFile);
    }
    if (found === null) {
      throw new PatchError(
        `could not find these lines in ${displayPath}${index > 0 ? ` after line ${index}` : ""}:\n${chunk.oldLines.join("\n")}\n` +
          "Read the file again and make the context and '-' lines match it exactly.",
      );
    }
    // Context lines keep the file's text (the match may have ignored whitespace differences).
    const insert: string[] = [];
    let offset = 0;
    for (const { op, text } of ops) {
      if (op === " ") insert.push(lines[found + offset++]!);
      else if (op === "-") offset++;
      else insert.push(text);
    }
    replacements.push({ start: found, remove: pattern.length, insert });
    index = found + pattern.length;
  }
  replacements.sort((a, b) => a.start - b.start);
  for (let r = replacements.length - 1; r >= 0; r--) {
    const { start, remove, insert } = replacements[r]!;
    lines.splice(start, remove, ...insert);
  }
  return lines.length === 0 ? "" : `${lines.join(eol)}${eol}`;
}

export interface PatchOutcome {
  /** Workspace-relative paths touched (added, modified, deleted, moved from and to). */
  changed: string[];
  /** One line per operation: `A path`, `M path`, `D path`, `R from -> to`. */
  summary: string[];
}

/** Parses and applies a patch inside `root`. Nothing is written unless every hunk applies. */
export function applyPatch(root: string, patchText: string): PatchOutcome {
  const hunks = parsePatch(patchText);
  // Planned file states: absolute path -> new content, or null for deletion.
  const planned = new Map<string, string | null>();
  const current = (abs: string): string | null => {
    if (planned.has(abs)) return planned.get(abs)!;
    if (!existsSync(abs)) return null;
    if (!statSync(abs).isFile()) throw new PatchError(`${toRelative(root, abs)} is not a regular file`);
    return readFileSync(abs, "utf8");
  };
  const resolve = (p: string): string => {
    try {
      return resolveInWorkspace(root, p, { write: true });
    } catch (error) {
      if (error instanceof PathError) throw new PatchError(error.message);
      throw error;
    }
  };
  const changed = new Set<string>();
  const summary: string[] = [];
  for (const hunk of hunks) {
    const abs = resolve(hunk.path);
    const rel = toRelative(root, abs);
    if (hunk.kind === "add") {
      if (current(abs) !== null)
        throw new PatchError(`cannot add ${rel}: the file already exists (use '*** Update File:')`);
      planned.set(abs, hunk.contents);
      summary.push(`A ${rel}`);
      changed.add(rel);
    } else if (hunk.kind === "delete") {
      if (current(abs) === null) throw new PatchError(`cannot delete ${rel}: the file does not exist`);
      planned.set(abs, null);
      summary.push(`D ${rel}`);
      changed.add(rel);
    } else {
      const before = current(abs);
      if (before === null)
        throw new PatchError(`cannot update ${rel}: the file does not exist (use '*** Add File:')`);
      const after = applyChunks(before, hunk.chunks, rel);
      if (hunk.moveTo !== null) {
        const dest = resolve(hunk.moveTo);
        const destRel = toRelative(root, dest);
        if (dest !== abs && current(dest) !== null)
          throw new PatchError(`cannot move ${rel} to ${destRel}: the destination exists`);
        planned.set(abs, null);
        planned.set(dest, after);
        summary.push(`R ${rel} -> ${destRel}`);
        changed.add(rel);
        changed.add(destRel);
      } else {
        planned.set(abs, after);
        summary.push(`M ${rel}`);
        changed.add(rel);
      }
    }
  }
  for (const [abs, content] of planned) {
    if (content === null) {
      if (existsSync(abs)) unlinkSync(abs);
    } else {
      mkdirSync(path.dirname(abs), { recursive: true });
      writeFileSync(abs, content);
    }
  }
  return { changed: [...changed], summary };
}
