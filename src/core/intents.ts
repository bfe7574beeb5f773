// What a person asked for: mention text, `/baton` text and reaction names → an Intent (CONTRACT §5).
// Pure parsing; every refusal says what is wrong and what to type instead.
import { inlineCode } from "./escape.js";
import type { TaskId } from "./task.js";

export type RequestOptions = { repo?: string; branch?: string; attempts?: number; mode?: "plan" | "auto" };

export type Intent =
  | ({ kind: "request"; verb: "fix" | "plan"; text: string } & RequestOptions)
  | { kind: "status"; taskId?: TaskId }
  | { kind: "cancel"; taskId?: TaskId }
  | { kind: "retry"; taskId?: TaskId }
  | { kind: "help" }
  | { kind: "list" }
  | { kind: "budget" }
  | { kind: "config_repo"; repo: string }
  | { kind: "invalid"; message: string };

export type ReactionIntent = "fix" | "approve" | "reject" | "cancel" | "retry" | { choose: 1 | 2 | 3 | 4 };

export const MAX_ATTEMPTS = 4;

const OPTION_KEYS = ["repo", "branch", "attempts", "mode"] as const;
type OptionKey = (typeof OPTION_KEYS)[number];

/** Near-miss spellings of our keys: an error with a hint rather than silently becoming request text. */
const OPTION_ALIASES: Readonly<Record<string, OptionKey>> = {
  repository: "repo",
  repos: "repo",
  base: "branch",
  base_branch: "branch",
  basebranch: "branch",
  branches: "branch",
  attempt: "attempts",
  tries: "attempts",
  modes: "mode",
};

const USAGE =
  "`@Baton [fix|plan] <what to do> [repo=owner/name] [branch=name] [attempts=1..4] [mode=plan|auto]`";

// ---------------------------------------------------------------------------------------------
// Entry points

/** A mention: the first `<@BOT>` (anywhere) is removed, the rest is a control word or a request. */
export function parseMentionText(text: string, botUserId: string): Intent {
  return parseCommand(stripFirstMention(text, botUserId), "mention");
}

/** `/baton …`: the same grammar plus `list`, `budget`, `config repo owner/name`; empty text is help. */
export function parseSlashText(text: string): Intent {
  return parseCommand(text, "slash");
}

const REACTIONS: Readonly<Record<string, ReactionIntent>> = {
  hammer_and_wrench: "fix",
  white_check_mark: "approve",
  x: "reject",
  octagonal_sign: "cancel",
  repeat: "retry",
  one: { choose: 1 },
  two: { choose: 2 },
  three: { choose: 3 },
  four: { choose: 4 },
};

/** An emoji name as Slack sends it (`white_check_mark`, `+1::skin-tone-2`) → what it means to Baton. */
export function parseReaction(name: string): ReactionIntent | undefined {
  const base = name.trim().replace(/^:|:$/g, "").split("::")[0] ?? "";
  return Object.hasOwn(REACTIONS, base) ? REACTIONS[base] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Slack text

const ENTITIES: Readonly<Record<string, string>> = { "&amp;": "&", "&lt;": "<", "&gt;": ">" };

function decodeEntities(s: string): string {
  // One pass, so `&amp;lt;` becomes `&lt;` (what the person typed), not `<`.
  return s.replace(/&(?:amp|lt|gt);/g, (e) => ENTITIES[e] ?? e);
}

/** Slack's wire format → what a person sees: mentions by name, links as `label (url)`, entities decoded. */
export function slackToPlainText(text: string): string {
  return text
    .replace(/<([^<>]*)>/g, (_whole, inner: string) => {
      const bar = inner.indexOf("|");
      const target = bar === -1 ? inner : inner.slice(0, bar);
      const label = bar === -1 ? undefined : inner.slice(bar + 1);
      if (target.startsWith("@")) return "@" + decodeEntities(label?.replace(/^@/, "") || target.slice(1));
      if (target.startsWith("#")) return "#" + decodeEntities(label?.replace(/^#/, "") || target.slice(1));
      if (target.startsWith("!")) {
        const [special = "", id] = target.slice(1).split("^");
        if (special === "here" || special === "channel" || special === "everyone") return "@" + special;
        if (label) return decodeEntities(label);
        return "@" + decodeEntities(id ?? special);
      }
      const url = decodeEntities(target);
      if (label === undefined || label === "") return url;
      const plainLabel = decodeEntities(label);
      // Auto-linked text carries itself as the label (`<http://github.com/a/b|github.com/a/b>`).
      if (plainLabel === url || plainLabel === url.replace(/^(?:https?:\/\/|mailto:)/i, ""))
        return plainLabel;
      return `${plainLabel} (${url})`;
    })
    .replace(/&(?:amp|lt|gt);/g, (e) => ENTITIES[e] ?? e);
}

// ---------------------------------------------------------------------------------------------
// Repositories and branches

const RESERVED_OWNERS = new Set([
  "about",
  "apps",
  "collections",
  "enterprise",
  "enterprises",
  "explore",
  "features",
  "login",
  "marketplace",
  "new",
  "notifications",
  "orgs",
  "organizations",
  "pricing",
  "search",
  "settings",
  "site",
  "sponsors",
  "topics",
  "users",
]);

/** `owner/name` as GitHub allows it (owner: letters, digits, single hyphens; name: letters, digits, `.-_`). */
export function isValidRepoName(s: string): boolean {
  const match = /^([A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})\/([A-Za-z0-9._-]{1,100})$/.exec(s);
  if (!match) return false;
  const name = match[2] ?? "";
  return name !== "." && name !== ".." && !/\.git$/i.test(name);
}

const GITHUB_URL =
  /(?:^|[^A-Za-z0-9.-])(?:(?:https?|git|ssh):\/\/)?(?:[A-Za-z0-9._-]+@)?(?:www\.)?github\.com[/:]([A-Za-z0-9][A-Za-z0-9-]{0,38})\/([A-Za-z0-9._-]{1,100})/gi;

function cleanRepoName(name: string): string {
  return name.replace(/\.git$/i, "").replace(/\.+$/, "");
}

/** The first github.com repository URL in the texts (Slack-linked or not) → `owner/name`. */
export function findGitHubRepo(texts: readonly string[]): string | undefined {
  for (const text of texts) {
    GITHUB_URL.lastIndex = 0;
    for (const match of text.matchAll(GITHUB_URL)) {
      const owner = match[1] ?? "";
      const repo = `${owner}/${cleanRepoName(match[2] ?? "")}`;
      if (!RESERVED_OWNERS.has(owner.toLowerCase()) && isValidRepoName(repo)) return repo;
    }
  }
  return undefined;
}

/**
 * A `repo=` value → `owner/name`: plain `owner/name`, a Slack link `<https://github.com/o/n|…>`,
 * `github.com/o/n`, `https://github.com/o/n.git`, `git@github.com:o/n.git`, with `/tree/…`-like
 * suffixes ignored. GitHub Enterprise hosts whose name starts with `github.` are accepted too.
 */
export function normalizeRepoInput(raw: string): string | undefined {
  let value = stripQuotes(raw.trim());
  const link = /^<([^|>]*)(?:\|[^>]*)?>$/.exec(value);
  if (link) value = link[1] ?? "";
  value = decodeEntities(value).trim();
  // `acme/web.` at the end of a sentence, or `acme/web.git`, mean `acme/web`.
  const plain = /^[^/\s]+\/[^/\s]+$/.test(value) ? cleanRepoName(value) : undefined;
  if (plain !== undefined && isValidRepoName(plain)) return plain;
  const url =
    /^(?:(?:https?|git|ssh):\/\/)?(?:[A-Za-z0-9._-]+@)?(?:www\.)?github(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?::\d+)?[/:]([^/\s]+)\/([^/\s?#]+)(?:[/?#]\S*)?$/i.exec(
      value,
    );
  if (!url) return undefined;
  const repo = `${url[1] ?? ""}/${cleanRepoName(url[2] ?? "")}`;
  return isValidRepoName(repo) && !RESERVED_OWNERS.has((url[1] ?? "").toLowerCase()) ? repo : undefined;
}

/** A branch name git accepts (`git check-ref-format --branch`), that is also safe as an argv word. */
export function isValidBranchName(s: string): boolean {
  if (s.length === 0 || s.length > 255) return false;
  if (s.startsWith("-") || s.startsWith("/") || s.endsWith("/") || s.endsWith(".") || s === "@") return false;
  if (s.includes("..") || s.includes("//") || s.includes("@{")) return false;
  // Control characters, space, and ~ ^ : ? * [ \ are not allowed anywhere in a ref.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(s)) return false;
  // Legal for git, but quoting and Slack-markup hazards in every message and command that shows it.
  if (/[<>|"'`]/.test(s)) return false;
  return s.split("/").every((part) => !part.startsWith(".") && !part.endsWith(".lock"));
}

// ---------------------------------------------------------------------------------------------
// The grammar

const TASK_ID = /^t-[0-9a-z]{6}$/i;

function stripFirstMention(text: string, botUserId: string): string {
  const escaped = botUserId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return text.replace(new RegExp(`[ \\t]*<@${escaped}(?:\\|[^>]*)?>[ \\t]*`), " ");
}

/** Slack auto-links words that look like host names (`feature.io`): use what the person typed. */
function unwrapSlackLink(s: string): string {
  const link = /^<([^|>]*)(?:\|([^>]*))?>$/.exec(s);
  return link ? (link[2] ?? link[1] ?? "") : s;
}

function stripQuotes(s: string): string {
  const match = /^(["'`\u2018\u201C])(.*)(["'`\u2019\u201D])$/s.exec(s);
  return match ? (match[2] ?? "") : s;
}

interface Token {
  text: string;
  start: number;
  end: number;
}

/** Whitespace-separated words, where a Slack `<…>` span (whose label may hold spaces) stays whole. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] ?? "")) i++;
    if (i >= text.length) break;
    const start = i;
    while (i < text.length && !/\s/.test(text[i] ?? "")) {
      if (text[i] === "<") {
        const close = text.indexOf(">", i);
        i = close === -1 ? i + 1 : close + 1;
      } else {
        i++;
      }
    }
    tokens.push({ text: text.slice(start, i), start, end: i });
  }
  return tokens;
}

/** User input quoted back in a refusal: short, inert, in code. */
function echo(text: string): string {
  return inlineCode(text.length > 80 ? `${text.slice(0, 79)}…` : text);
}

function invalid(message: string): Intent {
  return { kind: "invalid", message };
}

type Surface = "mention" | "slash";

function parseCommand(rawText: string, surface: Surface): Intent {
  const text = rawText.trim();
  const plain = slackToPlainText(text).trim();
  const words = plain.split(/\s+/).filter((w) => w !== "");
  const first = (words[0] ?? "").toLowerCase().replace(/[.!?]+$/, "");

  if (words.length === 0) {
    return surface === "slash" ? { kind: "help" } : { kind: "request", verb: "fix", text: "" };
  }
  // `config repo …` is the settings command; any other sentence starting with "config" is a request.
  if (first === "config" && (words.length === 1 || words[1]?.toLowerCase() === "repo"))
    return parseConfig(text, surface);
  const control = parseControl(first, words);
  if (control) return control;
  return parseRequest(text, surface);
}

function parseControl(first: string, words: readonly string[]): Intent | undefined {
  const rest = words.slice(1);
  if (rest.length === 0) {
    switch (first) {
      case "help":
        return { kind: "help" };
      case "status":
        return { kind: "status" };
      case "cancel":
        return { kind: "cancel" };
      case "retry":
        return { kind: "retry" };
      case "list":
        return { kind: "list" };
      case "budget":
        return { kind: "budget" };
    }
  }
  if (rest.length === 1 && (first === "status" || first === "cancel" || first === "retry")) {
    const id = (rest[0] ?? "").replace(/[.!?]+$/, "");
    if (TASK_ID.test(id)) return { kind: first, taskId: id.toUpperCase() as TaskId };
    if (/^t-/i.test(id)) {
      return invalid(
        `${echo(id)} is not a task id. Task ids look like \`T-7F3K2A\` (see the status message), e.g. \`${first} T-7F3K2A\`.`,
      );
    }
  }
  return undefined;
}

/** `/baton config repo owner/name` (admins; the service checks who may). */
function parseConfig(text: string, surface: Surface): Intent {
  const tokens = tokenize(text);
  if (surface === "mention") {
    if (tokens.length !== 3) return parseRequest(text, surface);
    return invalid("Channel settings are changed with the slash command: `/baton config repo owner/name`.");
  }
  if (tokens.length !== 3 || tokens[1]?.text.toLowerCase() !== "repo") {
    return invalid("Usage: `/baton config repo owner/name` sets this channel's default repository.");
  }
  const raw = tokens[2]?.text ?? "";
  const repo = normalizeRepoInput(raw);
  if (!repo)
    return invalid(
      `${echo(slackToPlainText(raw))} is not a repository. Usage: \`/baton config repo owner/name\`.`,
    );
  return { kind: "config_repo", repo };
}

/** [start, end) of ``` blocks and `inline` code in Slack text. */
function codeSpans(text: string): Array<[number, number]> {
  if (!text.includes("`")) return [];
  return Array.from(text.matchAll(/```[\s\S]*?```|`[^`\n]+`/g), (m): [number, number] => [
    m.index,
    m.index + m[0].length,
  ]);
}

function parseRequest(text: string, surface: Surface): Intent {
  const tokens = tokenize(text);
  const code = codeSpans(text);
  const options: RequestOptions = {};
  const seen = new Set<OptionKey>();
  const removed: Token[] = [];
  for (const token of tokens) {
    // `mode=production` in a pasted snippet is part of the request, not an option.
    if (code.some(([start, end]) => token.start < end && token.end > start)) continue;
    const match = /^([A-Za-z_]+)=(.*)$/s.exec(token.text);
    if (!match) continue;
    const rawKey = (match[1] ?? "").toLowerCase();
    const value = stripQuotes((match[2] ?? "").replace(/[,;]+$/, ""));
    const alias = Object.hasOwn(OPTION_ALIASES, rawKey) ? OPTION_ALIASES[rawKey] : undefined;
    if (alias !== undefined) {
      return invalid(
        `Unknown option \`${rawKey}=\`; did you mean \`${alias}=\`? Options: \`repo=owner/name\`, \`branch=name\`, \`attempts=1..${MAX_ATTEMPTS}\`, \`mode=plan|auto\`.`,
      );
    }
    if (!(OPTION_KEYS as readonly string[]).includes(rawKey)) continue; // `a=b` in prose stays in the text
    const key = rawKey as OptionKey;
    if (seen.has(key)) return invalid(`\`${key}=\` is given twice; keep one.`);
    seen.add(key);
    removed.push(token);
    const error = applyOption(options, key, value);
    if (error) return invalid(error);
  }

  let body = removeTokens(text, removed);
  let verb: "fix" | "plan" = "fix";
  const verbMatch = /^(fix|plan)(?:[:,]|(?=\s)|$)/i.exec(body);
  if (verbMatch) {
    verb = (verbMatch[1] ?? "fix").toLowerCase() as "fix" | "plan";
    body = body.slice(verbMatch[0].length);
  }
  const requestText = slackToPlainText(body).trim();
  if (requestText === "" && surface === "slash") {
    return invalid(
      `Say what to do, e.g. \`/baton fix the login redirect loop repo=acme/web\`. Usage: ${USAGE.replace("@Baton", "/baton")}`,
    );
  }
  const intent: Intent = { kind: "request", verb, text: requestText, ...options };
  if (verb === "plan" && options.mode === undefined) intent.mode = "plan";
  return intent;
}

/** Sets one option, or returns what is wrong with its value. */
function applyOption(options: RequestOptions, key: OptionKey, value: string): string | undefined {
  switch (key) {
    case "repo": {
      const repo = normalizeRepoInput(value);
      if (!repo) {
        return `${echo(`repo=${slackToPlainText(value)}`)} is not a GitHub repository. Use \`repo=owner/name\` (e.g. \`repo=acme/web\`) or a github.com URL.`;
      }
      options.repo = repo;
      return undefined;
    }
    case "branch": {
      const branch = decodeEntities(unwrapSlackLink(value));
      if (!isValidBranchName(branch)) {
        return `${echo(`branch=${slackToPlainText(value)}`)} is not a valid git branch name (no spaces, \`..\`, \`~^:?*[\\\`, or leading \`-\`). Use e.g. \`branch=main\`.`;
      }
      options.branch = branch;
      return undefined;
    }
    case "attempts": {
      const digits = unwrapSlackLink(value);
      const n = /^\d{1,3}$/.test(digits) ? Number(digits) : NaN;
      if (!Number.isInteger(n) || n < 1 || n > MAX_ATTEMPTS) {
        return `${echo(`attempts=${slackToPlainText(value)}`)} must be a whole number from 1 to ${MAX_ATTEMPTS}, e.g. \`attempts=2\`.`;
      }
      options.attempts = n;
      return undefined;
    }
    case "mode": {
      const mode = unwrapSlackLink(value).toLowerCase();
      if (mode !== "plan" && mode !== "auto") {
        return `${echo(`mode=${slackToPlainText(value)}`)} is not a mode. Use \`mode=plan\` (approve a plan first) or \`mode=auto\` (go straight to a pull request).`;
      }
      options.mode = mode;
      return undefined;
    }
  }
}

/** The text without the given tokens; the spaces around a removed word collapse, line breaks stay. */
function removeTokens(text: string, tokens: readonly Token[]): string {
  if (tokens.length === 0) return text.trim();
  let out = "";
  let pos = 0;
  for (const token of tokens) {
    out += text.slice(pos, token.start).replace(/[ \t]+$/, "");
    const next = text.slice(token.end);
    pos = token.end;
    // Keep one separating space if words continue on the same line.
    if (out !== "" && /^[ \t]*\S/.test(next) && !/\s$/.test(out)) out += " ";
    const lead = /^[ \t]+/.exec(next);
    if (lead) pos += lead[0].length;
  }
  return (out + text.slice(pos)).trim();
}
