// Compiles the agent (src/agent + src/shared) once per source state for tests that run the real
// `baton agent` process. Output goes under node_modules/.cache (git-ignored, and Node still finds
// the dependencies); a lock directory keeps parallel jest workers from building at the same time.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const OUT = path.join(ROOT, "node_modules", ".cache", "baton-agent-test");
const LOCK = `${OUT}.lock`;

/** Sizes and mtimes of the TypeScript files under `dirs` (relative to the repository root). */
function fingerprint(dirs: readonly string[] = ["src/agent", "src/shared"]): string {
  const parts: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (name.endsWith(".ts")) parts.push(`${path.relative(ROOT, full)}:${st.size}:${st.mtimeMs}`);
    }
  };
  for (const dir of dirs) walk(path.join(ROOT, dir));
  return parts.join("\n");
}

function withLock<T>(fn: () => T): Promise<T> {
  return withNamedLock(LOCK, fn);
}

/** Builds if needed and returns the path of the compiled agent entry (run it with process.execPath). */
export async function ensureBuilt(): Promise<string> {
  const entry = path.join(OUT, "agent", "cli-entry.js");
  return await withLock(() => {
    const stamp = path.join(OUT, ".fingerprint");
    const current = fingerprint();
    if (existsSync(entry) && existsSync(stamp) && readFileSync(stamp, "utf8") === current) return entry;
    mkdirSync(OUT, { recursive: true });
    const config = path.join(OUT, "tsconfig.json");
    writeFileSync(
      config,
      JSON.stringify({
        extends: path.join(ROOT, "tsconfig.build.json"),
        compilerOptions: {
          rootDir: path.join(ROOT, "src"),
          outDir: OUT,
          sourceMap: true,
          noEmitOnError: false,
        },
        include: [path.join(ROOT, "src", "agent"), path.join(ROOT, "src", "shared")],
      }),
    );
    try {
      execFileSync(
        process.execPath,
        [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", config],
        { cwd: ROOT, stdio: "pipe" },
      );
    } catch (error) {
      // Type errors still emit JavaScript; only a missing output is fatal.
      if (!existsSync(entry)) {
        throw new Error(
          `building the agent failed: ${String((error as { stdout?: Buffer }).stdout ?? error)}`,
          { cause: error },
        );
      }
    }
    writeFileSync(stamp, current);
    return entry;
  });
}

const DIST = path.join(ROOT, "dist");
const DIST_LOCK = path.join(ROOT, "node_modules", ".cache", "baton-dist.lock");
const DIST_STAMP = path.join(ROOT, "node_modules", ".cache", "baton-dist.fingerprint");

async function withNamedLock<T>(lock: string, fn: () => T): Promise<T> {
  mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > 180_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        // Released meanwhile.
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Compiles all of `src/` into `dist/` (what `bin/baton.js` runs) when the sources changed since the
 * last build, once per source state across parallel jest workers. Returns `bin/baton.js`.
 */
export async function ensureDistBuilt(): Promise<string> {
  const bin = path.join(ROOT, "bin", "baton.js");
  return await withNamedLock(DIST_LOCK, () => {
    const current = fingerprint(["src"]);
    const entry = path.join(DIST, "cli.js");
    if (existsSync(entry) && existsSync(DIST_STAMP) && readFileSync(DIST_STAMP, "utf8") === current)
      return bin;
    try {
      execFileSync(
        process.execPath,
        [
          path.join(ROOT, "node_modules", "typescript", "bin", "tsc"),
          "-p",
          path.join(ROOT, "tsconfig.build.json"),
        ],
        { cwd: ROOT, stdio: "pipe" },
      );
    } catch (error) {
      // Type errors (e.g. in files being edited elsewhere) still emit JavaScript; a missing entry is fatal.
      if (!existsSync(entry)) {
        throw new Error(`building dist failed: ${String((error as { stdout?: Buffer }).stdout ?? error)}`, {
          cause: error,
        });
      }
    }
    writeFileSync(DIST_STAMP, current);
    return bin;
  });
}
