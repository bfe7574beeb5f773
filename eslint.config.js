// ESLint flat config: typescript-eslint plus the import boundaries of ARCHITECTURE.md.
import { registerHooks } from "node:module";
import js from "@eslint/js";

// typescript-eslint drives the TypeScript 5 compiler API, which TypeScript 7 (our `tsc`) no longer
// ships. The TypeScript 5 package is installed as `typescript-for-eslint`; route the parser to it.
registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === "typescript") return nextResolve("typescript-for-eslint", context);
    return nextResolve(specifier, context);
  },
});
const { default: tseslint } = await import("typescript-eslint");

const SDKS = [
  "@slack/*",
  "@kubernetes/*",
  "openai",
  "openai/*",
  "bullmq",
  "ioredis",
  "octokit",
  "@octokit/*",
  "pino",
  "prom-client",
  "ws",
  "node:*",
];

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**", "bench/results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-restricted-syntax": [
        "error",
        { selector: "ExportDefaultDeclaration", message: "Use named exports." },
        { selector: "TSEnumDeclaration", message: "Use a union of string literals." },
      ],
    },
  },
  {
    // Only the edges read the environment.
    files: ["src/**/*.ts"],
    ignores: ["src/config/**", "src/agent/**", "src/cli.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        { object: "process", property: "env", message: "Read the environment in src/config/ only." },
      ],
    },
  },
  {
    // core/ is pure: no adapter, no service, no SDK, no I/O.
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/adapters/**", "**/services/**", "**/agent/**", "**/config/**"],
              message: "core/ imports no adapter, service, agent or config code.",
            },
            { group: SDKS, message: "core/ is pure: no SDK and no I/O modules." },
          ],
        },
      ],
    },
  },
  {
    // The agent runs inside the Job: it imports only agent/ and shared/.
    files: ["src/agent/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/core/**", "**/adapters/**", "**/services/**", "**/config/**", "**/cli.js"],
              message: "agent/ imports only agent/ and shared/.",
            },
            {
              group: ["@slack/*", "@kubernetes/*", "bullmq", "ioredis", "octokit", "@octokit/*"],
              message: "agent/ holds no bot-side SDK.",
            },
          ],
        },
      ],
    },
  },
  {
    // shared/ is imported by both sides: only zod and itself.
    files: ["src/shared/**/*.ts"],
    ignores: ["src/shared/logger.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/core/**", "**/adapters/**", "**/services/**", "**/agent/**", "**/config/**"],
              message: "shared/ imports only shared/.",
            },
            { group: SDKS.filter((s) => s !== "node:*"), message: "shared/ holds schemas, not SDK code." },
          ],
        },
      ],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs", "**/*.cjs"],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
        fetch: "readonly",
        module: "writable",
      },
    },
  },
  {
    // Jest loads these by their default export.
    files: ["jest.config.js", "test/support/global-setup.ts", "test/support/global-teardown.ts"],
    rules: { "no-restricted-syntax": "off" },
  },
  {
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off" },
  },
);
