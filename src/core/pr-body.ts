// Pure rendering of a Baton pull request's title and body (CONTRACT §9): summary, approved plan, who
// asked and where, the runner-recorded evidence as a table, files changed and the model cost.
// Model-written text is untrusted: it is escaped so it cannot break the layout or ping people.
import type { EvidenceEntry } from "../shared/run-result.js";
import { createRedactor, type Redactor } from "./redact.js";
import type { TaskId } from "./task.js";

/** GitHub refuses bodies over 65,536 characters; stay well under it. */
export const MAX_PR_BODY_CHARS = 60_000;
export const MAX_PR_TITLE_CHARS = 200;
const MAX_EVIDENCE_ROWS = 100;
const MAX_FILES_LISTED = 200;
const MAX_COMMAND_CHARS = 200;

export interface PullRequestContent {
  taskId: TaskId;
  /** The request text from Slack (used for the title when the summary has none). */
  requestText: string;
  /** What the agent says it did (model-written). */
  summary: string;
  plan?: { summary: string; steps: string[] };
  requesterName: string;
  /** Permalink to the Slack thread; absent when Slack could not give one. */
  threadPermalink?: string;
  evidence: EvidenceEntry[];
  filesChanged: string[];
  usage: { costUsd: number; tokens: number };
  attempt: number;
  attempts: number;
}

export interface RenderedPullRequest {
  title: string;
  body: string;
}

/** Marker that identifies a Baton pull request body (and its task) without being visible. */
export function bodyMarker(taskId: TaskId, attempt: number): string {
  return `<!-- baton:task=${taskId} attempt=${attempt} -->`;
}

/**
 * Title and body. Model-written text and command lines pass through `redact` first (token shapes and
 * private keys by default; the publisher adds the literal credentials it holds).
 */
export function renderPullRequest(
  content: PullRequestContent,
  redact: Redactor = createRedactor([]),
): RenderedPullRequest {
  const safe: PullRequestContent = {
    ...content,
    requestText: redact(content.requestText),
    summary: redact(content.summary),
    ...(content.plan
      ? { plan: { summary: redact(content.plan.summary), steps: content.plan.steps.map((s) => redact(s)) } }
      : {}),
    evidence: content.evidence.map((e) => ({ ...e, argv: e.argv.map((a) => redact(a)) })),
    filesChanged: content.filesChanged.map((f) => redact(f)),
  };
  return { title: renderTitle(safe), body: renderBody(safe) };
}

export function renderTitle(content: Pick<PullRequestContent, "taskId" | "summary" | "requestText">): string {
  const source = firstLine(content.summary) || firstLine(content.requestText) || "Changes requested in Slack";
  // Titles are plain text on GitHub; mentions there still notify, so neutralise them.
  const text = neutraliseMentions(source.replace(/\s+/g, " ").trim());
  const prefix = `${content.taskId}: `;
  return truncate(prefix + text, MAX_PR_TITLE_CHARS);
}

function renderBody(c: PullRequestContent): string {
  const sections: string[] = [];
  const summary = safeMarkdown(c.summary.trim() || "(no summary)");
  sections.push(capLines(`## Summary\n\n${summary}`, BUDGET.summary));

  if (c.plan) {
    const steps = c.plan.steps.map((s, i) => `${i + 1}. ${safeInline(truncate(s, 500))}`).join("\n");
    const planSummary = c.plan.summary.trim() ? `${safeMarkdown(c.plan.summary.trim())}\n\n` : "";
    sections.push(capLines(`## Approved plan\n\n${planSummary}${steps}`.trimEnd(), BUDGET.plan));
  }

  const where = c.threadPermalink ? `: ${c.threadPermalink}` : ".";
  const attemptNote = c.attempts > 1 ? ` (attempt ${c.attempt} of ${c.attempts})` : "";
  sections.push(`Requested by ${truncate(safeInline(c.requesterName), 200)} in Slack${where}${attemptNote}`);

  sections.push(renderEvidence(c.evidence, BUDGET.evidence));
  sections.push(renderFiles(c.filesChanged, BUDGET.files));
  sections.push(`Model cost: $${formatUsd(c.usage.costUsd)} (${formatCount(c.usage.tokens)} tokens)`);
  sections.push(bodyMarker(c.taskId, c.attempt));
  return sections.join("\n\n") + "\n";
}

/** Per-section character budgets: their sum stays under MAX_PR_BODY_CHARS whatever the input. */
const BUDGET = { summary: 20_000, plan: 10_000, evidence: 16_000, files: 10_000 } as const;

/** Keeps whole lines up to `max` characters and says that the rest was left out. */
function capLines(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.lastIndexOf("\n", max - 40);
  return `${closeFences(text.slice(0, cut > max / 2 ? cut : max - 40))}\n\n…(truncated)`;
}

/** An unclosed ``` fence in model text would swallow the rest of the body: close it. */
function closeFences(text: string): string {
  const fences = text.split("\n").filter((l) => /^\s*(```|~~~)/.test(l)).length;
  return fences % 2 === 1 ? `${text}\n\`\`\`` : text;
}

function renderEvidence(evidence: EvidenceEntry[], budget: number): string {
  if (evidence.length === 0) return "## Evidence\n\nThe agent ran no commands.";
  const head = [
    "## Evidence",
    "",
    "Commands the runner executed for the agent (recorded by Baton, not reported by the model):",
    "",
    "| command | exit code | duration |",
    "| --- | --- | --- |",
  ];
  const rows = evidence.slice(0, MAX_EVIDENCE_ROWS).map((e) => {
    const command = truncate(e.argv.map(shellQuote).join(" "), MAX_COMMAND_CHARS);
    const exit = e.timedOut ? "timed out" : e.exitCode === null ? "killed" : String(e.exitCode);
    return `| ${codeCell(command)} | ${exit} | ${formatDuration(e.durationMs)} |`;
  });
  return fitList(head.join("\n"), rows, evidence.length, budget, (n) => `\n\n…and ${n} more commands.`);
}

function renderFiles(files: string[], budget: number): string {
  if (files.length === 0) return "## Files changed\n\nNone reported.";
  const items = files.slice(0, MAX_FILES_LISTED).map((f) => `- ${codeSpan(truncate(f, 300))}`);
  return fitList(
    `## Files changed (${files.length})\n`,
    items,
    files.length,
    budget,
    (n) => `\n- …and ${n} more`,
  );
}

/** Heading plus as many lines as fit in `budget`, then a note saying how many were left out. */
function fitList(
  head: string,
  lines: string[],
  total: number,
  budget: number,
  more: (n: number) => string,
): string {
  let text = head;
  let shown = 0;
  const reserve = more(total).length;
  for (const line of lines) {
    if (text.length + line.length + 1 + reserve > budget) break;
    text += `\n${line}`;
    shown += 1;
  }
  return shown < total ? text + more(total - shown) : text;
}

/** `0.42`, `12.00`; sub-cent amounts keep enough digits to not read as free. */
export function formatUsd(amount: number): string {
  if (!Number.isFinite(amount) || amount <= 0) return "0.00";
  if (amount < 0.01) return amount.toFixed(4);
  return amount.toFixed(2);
}

function formatCount(n: number): string {
  return Math.max(0, Math.round(n)).toLocaleString("en-US");
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .map((l) => l.replace(/^#+\s*/, "").trim())
      .find((l) => l.length > 0) ?? ""
  );
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** `@user` and `@org/team` in untrusted text would notify people on GitHub: break the mention. */
function neutraliseMentions(text: string): string {
  return text.replace(/(^|[^\w`])@(?=[A-Za-z0-9])/g, "$1@\u200b");
}

/** Multi-line model text: neutralise mentions, HTML comments that could forge our marker, open fences. */
function safeMarkdown(text: string): string {
  return closeFences(neutraliseMentions(text).replace(/<!--/g, "&lt;!--"));
}

/** One-line text inside a list item or sentence. */
function safeInline(text: string): string {
  return safeMarkdown(text.replace(/\s*\n\s*/g, " "));
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A table cell holding code: pipes and newlines would break the row, backticks the span. */
function codeCell(text: string): string {
  return codeSpan(text.replace(/\r?\n/g, " ")).replace(/\|/g, "\\|");
}

function codeSpan(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((m) => m.length));
  const fence = "`".repeat(longest + 1);
  const pad = text.startsWith("`") || text.endsWith("`") ? " " : "";
  return `${fence}${pad}${text}${pad}${fence}`;
}
