// Patch formats the emulated API server accepts: JSON merge patch (RFC 7386), strategic merge patch
// (treated as a merge patch: Baton only patches scalar fields such as spec.suspend) and JSON patch
// (RFC 6902: add, replace, remove, test).

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

export class JsonPatchError extends Error {}

function decodePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new JsonPatchError(`invalid JSON pointer ${pointer}`);
  return pointer
    .slice(1)
    .split("/")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"));
}

export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw new JsonPatchError("a JSON patch is an array of operations");
  let doc = structuredClone(target) as Json;
  for (const raw of operations) {
    if (!isObject(raw) || typeof raw["op"] !== "string" || typeof raw["path"] !== "string") {
      throw new JsonPatchError("each operation needs op and path");
    }
    const op = raw["op"];
    const path = decodePointer(raw["path"]);
    const value = raw["value"] as Json;
    if (path.length === 0) {
      if (op === "add" || op === "replace") doc = structuredClone(value);
      else throw new JsonPatchError(`unsupported root operation ${op}`);
      continue;
    }
    let parent: Json = doc;
    for (const part of path.slice(0, -1)) {
      const next: Json | undefined = Array.isArray(parent)
        ? parent[Number(part)]
        : isObject(parent)
          ? (parent as Record<string, Json>)[part]
          : undefined;
      if (next === undefined) throw new JsonPatchError(`path ${String(raw["path"])} does not exist`);
      parent = next;
    }
    const last = path[path.length - 1] as string;
    if (Array.isArray(parent)) {
      const index = last === "-" ? parent.length : Number(last);
      if (op === "add") parent.splice(index, 0, structuredClone(value));
      else if (op === "replace") parent[index] = structuredClone(value);
      else if (op === "remove") parent.splice(index, 1);
      else if (op === "test") {
        if (JSON.stringify(parent[index]) !== JSON.stringify(value))
          throw new JsonPatchError(`test failed at ${String(raw["path"])}`);
      } else throw new JsonPatchError(`unsupported operation ${op}`);
    } else if (isObject(parent)) {
      const record = parent as Record<string, Json>;
      if (op === "add") record[last] = structuredClone(value);
      else if (op === "replace") {
        if (!(last in record)) throw new JsonPatchError(`path ${String(raw["path"])} does not exist`);
        record[last] = structuredClone(value);
      } else if (op === "remove") {
        if (!(last in record)) throw new JsonPatchError(`path ${String(raw["path"])} does not exist`);
        delete record[last];
      } else if (op === "test") {
        if (JSON.stringify(record[last]) !== JSON.stringify(value))
          throw new JsonPatchError(`test failed at ${String(raw["path"])}`);
      } else throw new JsonPatchError(`unsupported operation ${op}`);
    } else throw new JsonPatchError(`path ${String(raw["path"])} does not exist`);
  }
  return doc;
}

/** Equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`), comma-separated. */
export function matchesSelector(
  labels: Record<string, string> | undefined,
  selector: string | null,
): boolean {
  if (!selector) return true;
  const have = labels ?? {};
  for (const raw of selector.split(",")) {
    const term = raw.trim();
    if (term === "") continue;
    const ne = term.indexOf("!=");
    if (ne > 0) {
      if (have[term.slice(0, ne).trim()] === term.slice(ne + 2).trim()) return false;
      continue;
    }
    const eq = term.indexOf("=");
    if (eq > 0) {
      const key = term.slice(0, eq).trim();
      const value = term.slice(term[eq + 1] === "=" ? eq + 2 : eq + 1).trim();
      if (have[key] !== value) return false;
      continue;
    }
    if (term.startsWith("!")) {
      if (term.slice(1).trim() in have) return false;
      continue;
    }
    if (!(term in have)) return false;
  }
  return true;
}

export function isValidSelector(selector: string | null): boolean {
  if (!selector) return true;
  return selector
    .split(",")
    .every((raw) => /^\s*!?[A-Za-z0-9._/-]+\s*((==?|!=)\s*[A-Za-z0-9._-]*\s*)?$/.test(raw));
}
