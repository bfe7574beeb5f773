// Secrets out of everything Baton shows or stores: Slack messages, PR bodies, logs, model input.
// Every pattern is linear-time (no nested quantifiers; PEM blocks are found with indexOf), so a
// megabyte of hostile agent output costs milliseconds, not minutes.

export const REDACTED = "[REDACTED]";

export type Redactor = (text: string) => string;

/** Literal secrets shorter than this are ignored: they would redact ordinary words. */
export const MIN_SECRET_LENGTH = 6;

// A token prefix counts when it starts a word, or follows an escaped control character (`\n` in JSON,
// `%0A` in a URL), where the preceding letter would otherwise hide the word boundary.
const START = String.raw`(?:(?<![A-Za-z0-9])|(?<=\\[nrtbf])|(?<=%[0-9A-Fa-f]{2}))`;

/** Tokens recognisable by their shape, replaced as a whole. */
const TOKEN_PATTERNS: readonly RegExp[] = [
  // Slack: bot, user, app-level, refresh and configuration tokens.
  /xox[abeposr]-[A-Za-z0-9-]{8,}/g,
  /xapp-[A-Za-z0-9-]{8,}/g,
  // GitHub: classic 36-char bodies and the newer longer installation tokens (dots, dashes).
  /gh[pousr]_[A-Za-z0-9_.-]{20,}/g,
  /github_pat_[A-Za-z0-9_]{20,}/g,
  // OpenAI-style keys (sk-…, sk-proj-…, sk-svcacct-…); the word start keeps `task-…` intact.
  new RegExp(`${START}sk-[A-Za-z0-9_-]{20,}`, "g"),
  // AWS access key ids.
  new RegExp(`${START}(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])`, "g"),
];

/** `key = value` secrets: the key stays (it explains the redaction), the value goes. */
const VALUE_PATTERNS: readonly RegExp[] = [
  // AWS secret keys and session tokens, as env vars, ini lines, JSON (also JSON inside JSON).
  /((?:aws_secret_access_key|aws_session_token|secret_?access_?key|session_?token)(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'])?)[A-Za-z0-9/+=]{16,}/gi,
  // Authorization header values with a scheme.
  /((?:proxy-)?authorization(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'])?[ \t]*(?:bearer|basic|token|digest|bot|apikey)[ \t]+)[^\s"'\\,;]+/gi,
  // A bearer token anywhere else (curl -H 'Bearer …', logged request headers).
  /(\bbearer[ \t]+)[A-Za-z0-9._~+/=-]{12,}/gi,
  // Passwords in URLs: scheme://user:password@host.
  /(:\/\/[^\s:@/?#"'<>]{1,256}:)[^\s@/?#"'<>]{1,256}(?=@)/g,
];

const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----/g;
const PEM_END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----/g;

/** Private key blocks, also with newlines escaped as `\n`; an unterminated block is redacted to the end. */
function redactPem(text: string): string {
  if (!text.includes("PRIVATE KEY-----")) return text;
  let out = "";
  let pos = 0;
  PEM_BEGIN.lastIndex = 0;
  for (;;) {
    PEM_BEGIN.lastIndex = pos;
    const begin = PEM_BEGIN.exec(text);
    if (!begin) break;
    out += text.slice(pos, begin.index) + REDACTED;
    PEM_END.lastIndex = begin.index + begin[0].length;
    const end = PEM_END.exec(text);
    if (!end) {
      // Truncated output (a log tail) can cut the key: everything after BEGIN is key material.
      return out;
    }
    pos = end.index + end[0].length;
  }
  return out + text.slice(pos);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** Hex digits matching either case (`\u00e9` and `\u00E9`, `%2f` and `%2F` are the same character). */
function hexAnyCase(n: number, width: number): string {
  return Array.from(n.toString(16).padStart(width, "0"), (d) =>
    /[a-f]/.test(d) ? `[${d}${d.toUpperCase()}]` : d,
  ).join("");
}

const JSON_SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  "\\": "\\\\",
  "/": "\\/",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

/** Regex source for one character in any of its spellings: raw, JSON-escaped, `\uXXXX`, URL-encoded. */
function characterForms(ch: string): string {
  const forms = new Set<string>([escapeRegExp(ch)]);
  const short = JSON_SHORT_ESCAPES[ch];
  if (short !== undefined) forms.add(escapeRegExp(short));
  let unicode = "";
  for (let i = 0; i < ch.length; i++) unicode += String.raw`\\u` + hexAnyCase(ch.charCodeAt(i), 4);
  forms.add(unicode);
  let url = "";
  for (const byte of new TextEncoder().encode(ch)) url += "%" + hexAnyCase(byte, 2);
  forms.add(url);
  if (ch === " ") forms.add(String.raw`\+`);
  const list = [...forms];
  return list.length === 1 ? (list[0] ?? "") : `(?:${list.join("|")})`;
}

function literalSecretsPattern(secretValues: readonly string[]): RegExp | undefined {
  const secrets = new Set<string>();
  for (const value of secretValues) {
    for (const candidate of [value, value.trim()]) {
      if (candidate.length >= MIN_SECRET_LENGTH) secrets.add(candidate);
    }
  }
  if (secrets.size === 0) return undefined;
  // Longest first, so a secret that contains another is removed whole.
  const sources = [...secrets]
    .sort((a, b) => b.length - a.length)
    .map((secret) => Array.from(secret, characterForms).join(""));
  return new RegExp(sources.join("|"), "g");
}

/**
 * A redactor for everything leaving the trusted side: known token shapes, private keys, credential
 * values, and the literal `secretValues` (the configured tokens and keys) in raw, JSON-escaped and
 * URL-encoded spellings.
 */
export function createRedactor(secretValues: readonly string[]): Redactor {
  const literal = literalSecretsPattern(secretValues);
  return (text: string): string => {
    if (text === "") return text;
    let out = literal ? text.replace(literal, REDACTED) : text;
    out = redactPem(out);
    for (const pattern of TOKEN_PATTERNS) out = out.replace(pattern, REDACTED);
    for (const pattern of VALUE_PATTERNS) out = out.replace(pattern, `$1${REDACTED}`);
    return out;
  };
}

/** Keys whose string values are credentials whatever they look like. */
const SENSITIVE_KEY =
  /^(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[-_]?key|password|passwd|secret|client[-_]?secret|private[-_]?key|access[-_]?token|refresh[-_]?token|id[-_]?token|token|run[-_]?token|bearer)$/i;

const MAX_DEPTH = 64;

/**
 * A deep copy of `value` with every string redacted and the values of credential-named keys
 * replaced. Errors become plain objects (name, message, stack, own fields); cycles and very deep
 * structures are cut with a marker instead of overflowing the stack.
 */
export function redactDeep<T>(value: T, redact: Redactor): T {
  return walk(value, redact, new WeakSet<object>(), 0) as T;
}

function walk(value: unknown, redact: Redactor, seen: WeakSet<object>, depth: number): unknown {
  if (typeof value === "string") return redact(value);
  if (value === null || typeof value !== "object") return value;
  if (seen.has(value)) return "[Circular]";
  if (depth >= MAX_DEPTH) return "[Truncated]";
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => walk(item, redact, seen, depth + 1));
    if (value instanceof Error) {
      const plain: Record<string, unknown> = { name: value.name, message: value.message, stack: value.stack };
      for (const [key, item] of Object.entries(value)) plain[key] = item;
      if (value.cause !== undefined) plain["cause"] = value.cause;
      return walkObject(plain, redact, seen, depth);
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value; // Date, Uint8Array, class instances
    return walkObject(value as Record<string, unknown>, redact, seen, depth);
  } finally {
    seen.delete(value);
  }
}

function walkObject(
  value: Record<string, unknown>,
  redact: Redactor,
  seen: WeakSet<object>,
  depth: number,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] =
      SENSITIVE_KEY.test(key) && typeof item === "string" && item !== ""
        ? REDACTED
        : walk(item, redact, seen, depth + 1);
  }
  return out;
}
