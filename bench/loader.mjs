// Lets `node` run the benchmarks straight from TypeScript (bench/, src/, test/emulators, test/support)
// the way Jest does: relative `.js` specifiers resolve to the `.ts` file next to them, and `.ts`
// files are compiled in memory by SWC (parameter properties etc. need more than type stripping).
import { existsSync, readFileSync } from "node:fs";
import { registerHooks } from "node:module";
import { fileURLToPath } from "node:url";
import { transformSync } from "@swc/core";

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (
      (specifier.startsWith("./") || specifier.startsWith("../")) &&
      specifier.endsWith(".js") &&
      context.parentURL
    ) {
      const asTs = new URL(specifier.replace(/\.js$/, ".ts"), context.parentURL);
      if (
        asTs.protocol === "file:" &&
        !existsSync(new URL(specifier, context.parentURL)) &&
        existsSync(asTs)
      ) {
        return { url: asTs.href, shortCircuit: true, format: "module" };
      }
    }
    return nextResolve(specifier, context);
  },
  load(url, context, nextLoad) {
    if (!url.startsWith("file:") || !url.endsWith(".ts")) return nextLoad(url, context);
    const filename = fileURLToPath(url);
    const { code } = transformSync(readFileSync(filename, "utf8"), {
      filename,
      jsc: { parser: { syntax: "typescript" }, target: "es2023" },
      module: { type: "es6" },
      sourceMaps: "inline",
    });
    return { format: "module", source: code, shortCircuit: true };
  },
});
