// Task → Slack Block Kit messages (status, plan, result, attempts, help, lists, App Home), always
// within Slack's payload limits. Untrusted text (requests, model output, commands, logs) is redacted,
// then escaped, then cut with a visible marker; Baton's own markup is the only live mrkdwn.
import type { SlackBlock } from "./ports/chat.js";
import { codeBlock, escapeSlackText, inlineCode } from "./escape.js";
import {
  isTerminal,
  type CommandSummary,
  type RunInfo,
  type Task,
  type TaskId,
  type TaskState,
} from "./task.js";
import { bestAttempt } from "./scoring.js";
import type { EvidenceEntry } from "../shared/run-result.js";

export interface RenderContext {
  now: Date;
  redact: (text: string) => string;
  /** The task thread's permalink, when the caller has it (lists and App Home link to threads). */
  permalink?: string;
}

export interface SlackMessage {
  /** Notification and accessibility fallback. */
  text: string;
  blocks: SlackBlock[];
}

export const ACTION_IDS = {
  approve: "baton_approve",
  reject: "baton_reject",
  cancel: "baton_cancel",
  retry: "baton_retry",
  choose: "baton_choose",
  repoPick: "baton_repo_pick",
  fix: "baton_fix",
} as const;

/** Slack's documented limits, plus our own 12 000-character total for one message. */
export const SLACK_LIMITS = {
  messageBlocks: 50,
  viewBlocks: 100,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  contextElements: 10,
  contextText: 3000,
  headerText: 150,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  actionId: 255,
  blockId: 255,
  selectOptions: 100,
  optionText: 75,
  optionValue: 150,
  totalText: 12_000,
  fallbackText: 3000,
} as const;

export const TRUNCATED = "… (truncated)";

// Untrusted text is cut to this much more than it can show before redaction, so a secret straddling
// the cut is still whole when the redactor sees it, and megabytes are never escaped only to be dropped.
const REDACT_MARGIN = 16_384;

// ---------------------------------------------------------------------------------------------
// Button values

/** `choose` buttons carry `${taskId}:${attempt}`. */
export function chooseValue(taskId: TaskId, attempt: number): string {
  return `${taskId}:${attempt}`;
}

export function parseChooseValue(value: string): { taskId: TaskId; attempt: number } | undefined {
  const match = /^(T-[0-9A-Z]{6}):([1-9][0-9]?)$/.exec(value);
  if (!match) return undefined;
  return { taskId: match[1] as TaskId, attempt: Number(match[2]) };
}

/** Repo picker options carry `${requestId}:${repo}` (a select sends only the chosen option's value). */
export function repoPickValue(requestId: string, repo: string): string {
  return `${requestId}:${repo}`;
}

export function parseRepoPickValue(value: string): { requestId: string; repo: string } | undefined {
  const colon = value.lastIndexOf(":");
  if (colon <= 0 || colon === value.length - 1) return undefined;
  return { requestId: value.slice(0, colon), repo: value.slice(colon + 1) };
}

// ---------------------------------------------------------------------------------------------
// Words and numbers

const STATE_WORDS: Readonly<Record<TaskState, { emoji: string; words: string }>> = {
  received: { emoji: ":inbox_tray:", words: "Received" },
  planning: { emoji: ":memo:", words: "Planning" },
  awaiting_approval: { emoji: ":raised_hand:", words: "Plan ready, waiting for approval" },
  implementing: { emoji: ":hammer_and_wrench:", words: "Implementing" },
  pr_opened: { emoji: ":rocket:", words: "Pull request opened" },
  no_change: { emoji: ":white_circle:", words: "Finished without changes" },
  failed: { emoji: ":warning:", words: "Failed" },
  rejected: { emoji: ":no_entry_sign:", words: "Plan rejected" },
  expired: { emoji: ":alarm_clock:", words: "Expired (the plan was not approved in time)" },
  cancelled: { emoji: ":octagonal_sign:", words: "Cancelled" },
};

export function stateLabel(state: TaskState): string {
  return STATE_WORDS[state].words;
}

function stateLine(task: Task): string {
  const { emoji, words } = STATE_WORDS[task.state];
  const waitingForRepo = task.state === "received" && task.repo === undefined;
  return `${emoji} ${waitingForRepo ? "Waiting for a repository" : words}`;
}

/** `$0.42`; never negative or NaN. */
export function formatCost(usd: number): string {
  return `$${(Number.isFinite(usd) && usd > 0 ? usd : 0).toFixed(2)}`;
}

/** `12,345` */
export function formatTokens(n: number): string {
  const whole = Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
  return String(whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** `850ms`, `12.3s`, `3m 05s`, `2h 03m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "0s";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const total = Math.floor(s);
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (total < 3600) return `${Math.floor(total / 60)}m ${pad(total % 60)}s`;
  if (total < 86_400) return `${Math.floor(total / 3600)}h ${pad(Math.floor((total % 3600) / 60))}m`;
  return `${Math.floor(total / 86_400)}d ${Math.floor((total % 86_400) / 3600)}h`;
}

function elapsedMs(task: Task, ctx: RenderContext): number | undefined {
  const start = Date.parse(task.createdAt);
  // A finished task's clock stops at its last change.
  const end = isTerminal(task.state) ? Date.parse(task.updatedAt) : ctx.now.getTime();
  if (!Number.isFinite(start) || !Number.isFinite(end)) return undefined;
  return Math.max(0, end - start);
}

function usageLine(task: Task): string {
  const usage = task.progress.usage;
  return `${formatTokens(usage.promptTokens + usage.completionTokens)} tokens · ${formatCost(usage.costUsd)}`;
}

/** argv as a person would type it; quoting keeps word boundaries visible. */
export function formatArgv(argv: readonly string[]): string {
  return argv
    .map((arg) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`))
    .join(" ");
}

function exitWords(entry: { exitCode: number | null; timedOut?: boolean }): string {
  if (entry.timedOut) return "timed out";
  return entry.exitCode === null ? "killed" : `exit ${entry.exitCode}`;
}

function userMention(userId: string | undefined): string | undefined {
  // Only well-formed ids become mentions; anything else is not ours to link.
  return userId !== undefined && /^[UW][A-Z0-9]+$/.test(userId) ? `<@${userId}>` : undefined;
}

/** A link only for http(s) URLs, with the characters that would end Slack's `<url|label>` encoded. */
function link(url: string, label: string): string {
  if (!/^https?:\/\/[^\s]+$/i.test(url)) return escapeSlackText(label);
  const safeUrl = url.replace(/&/g, "&amp;").replace(/</g, "%3C").replace(/>/g, "%3E").replace(/\|/g, "%7C");
  return `<${safeUrl}|${escapeSlackText(label).replace(/\|/g, "¦")}>`;
}

// ---------------------------------------------------------------------------------------------
// Untrusted text

/** Never split a surrogate pair, an entity (`&amp;`) or Baton's own `<url|label>` markup. */
function safeCut(text: string, n: number): number {
  let cut = Math.max(0, Math.min(n, text.length));
  if (cut <= 0 || cut >= text.length) return cut;
  const before = text.charCodeAt(cut - 1);
  if (before >= 0xd800 && before <= 0xdbff) cut--;
  const amp = text.lastIndexOf("&", cut - 1);
  if (amp !== -1 && amp > cut - 5) {
    const semi = text.indexOf(";", amp);
    if (semi >= cut && semi - amp <= 4) cut = amp;
  }
  const open = text.lastIndexOf("<", cut - 1);
  if (open !== -1 && open > text.lastIndexOf(">", cut - 1)) cut = open;
  return cut;
}

/** A cut in raw (not yet escaped) or plain text: only a surrogate pair must stay whole. */
function rawCut(text: string, n: number): number {
  const cut = Math.max(0, Math.min(n, text.length));
  if (cut <= 0 || cut >= text.length) return cut;
  const before = text.charCodeAt(cut - 1);
  return before >= 0xd800 && before <= 0xdbff ? cut - 1 : cut;
}

/** Where a kept tail of raw text may start without splitting a surrogate pair. */
function rawStart(text: string, n: number): number {
  const start = Math.max(0, Math.min(n, text.length));
  if (start <= 0 || start >= text.length) return start;
  const at = text.charCodeAt(start);
  return at >= 0xdc00 && at <= 0xdfff ? start + 1 : start;
}

function countFences(text: string): number {
  let count = 0;
  for (let i = text.indexOf("```"); i !== -1; i = text.indexOf("```", i + 3)) count++;
  return count;
}

/** mrkdwn cut to `max` characters with a visible marker; an open code fence is closed first. */
export function truncateMrkdwn(text: string, max: number): string {
  if (text.length <= max) return text;
  const room = Math.max(0, max - TRUNCATED.length - 5);
  let piece = text.slice(0, safeCut(text, room));
  if (countFences(piece) % 2 === 1) piece += "\n```";
  return `${piece}\n${TRUNCATED}`;
}

function truncatePlain(text: string, max: number): string {
  if (text.length <= max) return text;
  const marker = "…";
  return text.slice(0, rawCut(text, Math.max(0, max - marker.length))) + marker;
}

function boundedRedact(text: string, ctx: RenderContext, keep: number, from: "head" | "tail"): string {
  const bound = keep + REDACT_MARGIN;
  if (text.length <= bound) return ctx.redact(text);
  return ctx.redact(from === "head" ? text.slice(0, bound) : text.slice(text.length - bound));
}

/** Untrusted mrkdwn body: redacted, escaped, at most `max` characters. */
function untrusted(text: string, ctx: RenderContext, max: number): string {
  return truncateMrkdwn(escapeSlackText(boundedRedact(text, ctx, max, "head")), max);
}

/** Untrusted text on one line (checklists, tables, lists). */
function untrustedLine(text: string, ctx: RenderContext, max: number): string {
  const raw = boundedRedact(text, ctx, max, "head").replace(/\s+/g, " ").trim();
  return truncatePlainEscaped(escapeSlackText(raw), max);
}

function truncatePlainEscaped(escaped: string, max: number): string {
  return escaped.length <= max ? escaped : escaped.slice(0, safeCut(escaped, Math.max(0, max - 1))) + "…";
}

/** Untrusted verbatim text in a code block of at most `max` characters, keeping its head or tail. */
function untrustedCode(text: string, ctx: RenderContext, max: number, keep: "head" | "tail"): string {
  const redacted = boundedRedact(text, ctx, max, keep);
  const note = keep === "tail" ? "… (earlier lines truncated)\n" : "";
  let budget = max;
  for (;;) {
    const cutLength = Math.min(redacted.length, budget);
    let piece: string;
    if (cutLength === redacted.length) {
      piece = redacted;
    } else if (keep === "tail") {
      piece = note + redacted.slice(rawStart(redacted, redacted.length - cutLength));
    } else {
      piece = redacted.slice(0, rawCut(redacted, cutLength)) + "\n" + TRUNCATED;
    }
    const block = codeBlock(piece);
    if (block.length <= max || budget <= 0) return block.length <= max ? block : codeBlock(TRUNCATED);
    // Escaping grows the text (entities); shrink until it fits.
    budget = Math.floor(Math.min(budget, cutLength) * 0.8) - note.length;
  }
}

// ---------------------------------------------------------------------------------------------
// Blocks

function mrkdwn(text: string): { type: "mrkdwn"; text: string } {
  return { type: "mrkdwn", text };
}

function section(text: string, accessory?: SlackBlock): SlackBlock {
  return accessory
    ? { type: "section", text: mrkdwn(text), accessory }
    : { type: "section", text: mrkdwn(text) };
}

function fieldsSection(fields: readonly string[]): SlackBlock {
  return { type: "section", fields: fields.slice(0, SLACK_LIMITS.sectionFields).map(mrkdwn) };
}

function context(...texts: string[]): SlackBlock {
  return { type: "context", elements: texts.filter((t) => t !== "").map(mrkdwn) };
}

function header(text: string): SlackBlock {
  return {
    type: "header",
    text: { type: "plain_text", text: truncatePlain(text, SLACK_LIMITS.headerText), emoji: true },
  };
}

function button(text: string, actionId: string, value: string, style?: "primary" | "danger"): SlackBlock {
  return {
    type: "button",
    text: { type: "plain_text", text, emoji: true },
    action_id: actionId,
    value,
    ...(style ? { style } : {}),
  };
}

function actions(...elements: SlackBlock[]): SlackBlock {
  return { type: "actions", elements };
}

const DIVIDER: SlackBlock = { type: "divider" };

/**
 * Lines into as few sections as fit, at most `maxChars` in all, with "… and N more" when cut. Lines
 * are produced on demand, so 10 000 steps cost only the ones shown.
 */
function linesToSections(
  total: number,
  lineAt: (index: number) => string,
  maxChars: number,
  what: string,
): SlackBlock[] {
  const blocks: SlackBlock[] = [];
  let current = "";
  let used = 0;
  let shown = 0;
  const perSection = SLACK_LIMITS.sectionText - 100;
  for (let i = 0; i < total; i++) {
    const line = lineAt(i);
    if (used + line.length + 1 > maxChars) break;
    if (current !== "" && current.length + line.length + 1 > perSection) {
      blocks.push(section(current));
      current = "";
    }
    current = current === "" ? line : `${current}\n${line}`;
    used += line.length + 1;
    shown++;
  }
  const hidden = total - shown;
  if (hidden > 0)
    current = `${current}${current === "" ? "" : "\n"}_… and ${formatTokens(hidden)} more ${what} (truncated)_`;
  if (current !== "") blocks.push(section(current));
  return blocks;
}

// ---------------------------------------------------------------------------------------------
// Status

const CHECK: Readonly<Record<string, string>> = { completed: "✅", in_progress: "▶️", pending: "⬜" };
const CANCELLABLE: readonly TaskState[] = ["received", "planning", "awaiting_approval", "implementing"];

function currentRuns(task: Task): RunInfo[] {
  return task.runs.filter((run) => run.launch === task.launch);
}

function runsLine(task: Task): string | undefined {
  const runs = currentRuns(task);
  if (runs.length === 0) return undefined;
  const describe = (run: RunInfo): string =>
    run.status === "queued"
      ? run.queuePosition !== undefined
        ? `queued (position ${run.queuePosition})`
        : "queued"
      : run.status;
  if (task.attempts <= 1 || runs.length === 1) {
    const run = runs[0];
    if (!run || run.status !== "queued") return undefined;
    return `:hourglass_flowing_sand: ${run.queuePosition !== undefined ? `Queued, position ${run.queuePosition}` : "Queued"}`;
  }
  return runs
    .slice(0, 8)
    .map((run) => `Attempt ${run.attempt}: ${describe(run)}`)
    .join(" · ");
}

function lastCommandLine(command: CommandSummary, ctx: RenderContext): string {
  const argv = inlineCode(untrustedRawLine(formatArgv(command.argv), ctx, 200));
  return `*Last command:* ${argv} → ${exitWords(command)} in ${formatDuration(command.durationMs)}`;
}

/** Redacted one-line raw text (no escaping: for inlineCode/codeBlock, which escape themselves). */
function untrustedRawLine(text: string, ctx: RenderContext, max: number): string {
  const raw = boundedRedact(text, ctx, max, "head").replace(/\s+/g, " ").trim();
  return raw.length <= max ? raw : raw.slice(0, rawCut(raw, max - 1)) + "…";
}

function checklist(task: Task, ctx: RenderContext): SlackBlock[] {
  const steps = task.progress.steps;
  if (steps.length === 0) return [];
  const done = steps.filter((s) => s.status === "completed").length;
  const line = (i: number): string => {
    const step = steps[i];
    return step ? `${CHECK[step.status] ?? "⬜"} ${untrustedLine(step.step, ctx, 300)}` : "";
  };
  return [
    context(`*Plan progress:* ${formatTokens(done)} of ${formatTokens(steps.length)} steps done`),
    ...linesToSections(steps.length, line, 5000, "steps"),
  ];
}

export function renderStatus(task: Task, ctx: RenderContext): SlackMessage {
  const blocks: SlackBlock[] = [];
  blocks.push(section(`*${task.id}* · ${stateLine(task)}`));
  const request = task.request.text.trim();
  if (request !== "") blocks.push(section(quote(untrusted(request, ctx, 600))));

  const fields = [
    `*Repository*\n${task.repo !== undefined ? inlineCode(task.repo) : "_not chosen yet_"}${task.baseBranch !== undefined ? ` (base ${inlineCode(task.baseBranch)})` : ""}`,
    `*Mode*\n${task.mode === "plan" ? "plan first, then implement" : "auto (straight to a pull request)"}`,
  ];
  const requester =
    userMention(task.requester.userId) ??
    (task.requester.name ? escapeSlackText(task.requester.name) : undefined);
  if (requester !== undefined) fields.push(`*Requested by*\n${requester}`);
  if (task.attempts > 1 || task.round > 1) {
    const parts = [
      task.attempts > 1 ? `${task.attempts} attempts` : "",
      task.round > 1 ? `round ${task.round}` : "",
    ];
    fields.push(`*Runs*\n${parts.filter((p) => p !== "").join(", ")}`);
  }
  blocks.push(fieldsSection(fields));

  const queue = runsLine(task);
  if (queue !== undefined && !isTerminal(task.state)) blocks.push(context(queue));
  blocks.push(...checklist(task, ctx));
  if (task.progress.lastCommand) blocks.push(section(lastCommandLine(task.progress.lastCommand, ctx)));
  if (task.state === "failed" && task.failure) {
    blocks.push(section(`*Why:* ${untrusted(task.failure.message, ctx, 1000)}`));
  }
  if (task.pr) blocks.push(section(`*Pull request:* ${link(task.pr.url, `#${task.pr.number}`)}`));

  const elapsed = elapsedMs(task, ctx);
  const timing =
    elapsed === undefined ? "" : `${isTerminal(task.state) ? "Took" : "Elapsed"} ${formatDuration(elapsed)}`;
  const thread = ctx.permalink !== undefined ? link(ctx.permalink, "thread") : "";
  blocks.push(context([timing, usageLine(task), thread].filter((p) => p !== "").join(" · ")));

  if (CANCELLABLE.includes(task.state)) {
    blocks.push(actions(button("Cancel", ACTION_IDS.cancel, task.id, "danger")));
    blocks.push(context("React 🛑 on this message to cancel."));
  } else if (task.state === "failed") {
    blocks.push(actions(button("Retry", ACTION_IDS.retry, task.id, "primary")));
    blocks.push(
      context(`React 🔁 on this message or run ${inlineCode(`/baton retry ${task.id}`)} to try again.`),
    );
  }

  const fallback = `${task.id}: ${stateLabel(task.state)}${request !== "" ? ` — ${untrustedLine(request, ctx, 200)}` : ""}`;
  return enforceLimits({ text: fallback, blocks });
}

function quote(text: string): string {
  return text
    .split("\n")
    .map((line) => `>${line}`)
    .join("\n");
}

// ---------------------------------------------------------------------------------------------
// Plan

export function renderPlan(task: Task, ctx: RenderContext): SlackMessage {
  const plan = task.plan;
  if (!plan) {
    return enforceLimits({
      text: `${task.id}: no plan yet`,
      blocks: [section(`*${task.id}*: there is no plan yet.`)],
    });
  }
  const blocks: SlackBlock[] = [header(`Plan for ${task.id}`)];
  const summary = plan.summary.trim();
  if (summary !== "") blocks.push(section(untrusted(summary, ctx, 2800)));
  const step = (i: number): string => `${i + 1}. ${untrustedLine(plan.steps[i] ?? "", ctx, 500)}`;
  blocks.push(...linesToSections(plan.steps.length, step, 6000, "steps"));
  if (plan.steps.length === 0) blocks.push(section("_The plan has no steps._"));

  if (task.state === "awaiting_approval") {
    blocks.push(context("React ✅ to approve or ❌ to reject. Reply in the thread to change the plan."));
    blocks.push(
      actions(
        button("Approve", ACTION_IDS.approve, task.id, "primary"),
        button("Reject", ACTION_IDS.reject, task.id, "danger"),
      ),
    );
  } else if (plan.approvedBy !== undefined) {
    blocks.push(context(`:white_check_mark: Approved by ${userMention(plan.approvedBy) ?? "an approver"}.`));
  } else if (task.state === "rejected" || task.state === "expired" || task.state === "cancelled") {
    blocks.push(context(`${STATE_WORDS[task.state].emoji} ${stateLabel(task.state)}.`));
  }
  const firstLine = summary.split("\n")[0] ?? "";
  return enforceLimits({
    text: `Plan for ${task.id}${firstLine !== "" ? `: ${untrustedLine(firstLine, ctx, 200)}` : ""}`,
    blocks,
  });
}

// ---------------------------------------------------------------------------------------------
// Result

/** The evidence as a monospace table (exit, duration, command) within `max` characters. */
function evidenceTable(evidence: readonly EvidenceEntry[], ctx: RenderContext, max: number): string {
  const head = `${"result".padEnd(10)} ${"time".padStart(8)}  command`;
  const rows: string[] = [head];
  let used = codeBlock(head).length;
  let shown = 0;
  const reserve = 60; // room for the "more commands" line
  for (const entry of evidence) {
    const row = `${exitWords(entry).padEnd(10)} ${formatDuration(entry.durationMs).padStart(8)}  ${untrustedRawLine(formatArgv(entry.argv), ctx, 150)}`;
    // The row's length once escaped, as codeBlock will print it.
    const cost = codeBlock(row).length - 7 + 1;
    if (used + cost > max - reserve) break;
    rows.push(row);
    used += cost;
    shown++;
  }
  if (shown < evidence.length)
    rows.push(`… and ${formatTokens(evidence.length - shown)} more commands (truncated)`);
  return codeBlock(rows.join("\n"));
}

function publishedAttempt(task: Task) {
  return task.pr ? task.attemptResults.find((a) => a.attempt === task.pr?.attempt) : undefined;
}

function filesLine(files: readonly string[], ctx: RenderContext): string {
  const shown: string[] = [];
  let used = 0;
  for (const file of files) {
    const item = inlineCode(untrustedRawLine(file, ctx, 200));
    if (used + item.length + 2 > 1500) break;
    shown.push(item);
    used += item.length + 2;
  }
  const more = files.length - shown.length;
  return `*Files changed (${formatTokens(files.length)}):* ${shown.join(", ")}${more > 0 ? ` … and ${formatTokens(more)} more (truncated)` : ""}`;
}

export function renderResult(task: Task, ctx: RenderContext): SlackMessage {
  const usage = task.progress.usage;
  const tokens = usage.promptTokens + usage.completionTokens;
  const cost = `Model cost: ${formatCost(usage.costUsd)} (${formatTokens(tokens)} tokens)`;
  const blocks: SlackBlock[] = [];
  let text: string;

  switch (task.state) {
    case "pr_opened": {
      const pr = task.pr;
      const attempt = publishedAttempt(task);
      const prLabel = pr ? `#${pr.number}${task.repo !== undefined ? ` in ${task.repo}` : ""}` : "";
      blocks.push(
        section(
          pr
            ? `:rocket: *${task.id}:* pull request ${link(pr.url, prLabel)} is ready for review.`
            : `:rocket: *${task.id}:* the pull request is ready for review.`,
        ),
      );
      const summary = (task.resultSummary ?? attempt?.summary ?? "").trim();
      if (summary !== "") blocks.push(section(untrusted(summary, ctx, 2800)));
      if (attempt && attempt.evidence.length > 0) {
        blocks.push(
          section(`*Evidence* (commands the runner recorded)\n${evidenceTable(attempt.evidence, ctx, 2800)}`),
        );
      }
      if (attempt && attempt.filesChanged.length > 0)
        blocks.push(section(filesLine(attempt.filesChanged, ctx)));
      const notes = [cost];
      if (task.attempts > 1 && pr)
        notes.push(
          `Attempt ${pr.attempt} of ${task.attempts} published; see the attempts summary to choose another.`,
        );
      if (task.round > 1) notes.push(`Round ${task.round}.`);
      blocks.push(context(...notes));
      text = pr
        ? `${task.id}: pull request #${pr.number} opened: ${escapeSlackText(pr.url)}`
        : `${task.id}: pull request opened`;
      break;
    }
    case "failed": {
      const failure = task.failure;
      const reason = failure ? untrusted(failure.message, ctx, 1500) : "the run ended without a result.";
      const code = failure?.code ? ` (${inlineCode(untrustedRawLine(failure.code, ctx, 60))})` : "";
      blocks.push(section(`:warning: *${task.id} failed:* ${reason}${code}`));
      if (failure?.logTail && failure.logTail.trim() !== "") {
        blocks.push(section(`*Last lines of the log*\n${untrustedCode(failure.logTail, ctx, 2500, "tail")}`));
      }
      blocks.push(context(`Cost so far: ${formatCost(usage.costUsd)} (${formatTokens(tokens)} tokens)`));
      blocks.push(
        section(
          `React 🔁 on the status message or run ${inlineCode(`/baton retry ${task.id}`)} to try again.`,
        ),
      );
      blocks.push(actions(button("Retry", ACTION_IDS.retry, task.id, "primary")));
      text = `${task.id} failed: ${failure ? untrustedLine(failure.message, ctx, 300) : "no result"}`;
      break;
    }
    case "no_change": {
      blocks.push(
        section(
          `:white_circle: *${task.id}:* finished without changes: the agent found nothing it needed to change, so no pull request was opened.`,
        ),
      );
      const summary = (task.resultSummary ?? "").trim();
      if (summary !== "") blocks.push(section(untrusted(summary, ctx, 2800)));
      blocks.push(context(cost));
      text = `${task.id}: finished without changes`;
      break;
    }
    case "rejected":
      text = `${task.id}: the plan was rejected, so nothing was changed.`;
      blocks.push(section(`:no_entry_sign: *${task.id}:* the plan was rejected, so nothing was changed.`));
      break;
    case "cancelled":
      text = `${task.id} was cancelled; nothing more will be changed.`;
      blocks.push(
        section(
          `:octagonal_sign: *${task.id}* was cancelled; nothing more will be changed${task.pr ? ` (pull request ${link(task.pr.url, `#${task.pr.number}`)} stays as it is)` : ""}.`,
        ),
      );
      break;
    case "expired":
      text = `${task.id} expired: the plan was not approved in time.`;
      blocks.push(
        section(
          `:alarm_clock: *${task.id}* expired: the plan was not approved in time. Mention me in this thread to start again.`,
        ),
      );
      break;
    default:
      text = `${task.id}: ${stateLabel(task.state)}`;
      blocks.push(
        section(
          `${STATE_WORDS[task.state].emoji} *${task.id}* is still in progress: ${stateLabel(task.state).toLowerCase()}.`,
        ),
      );
  }
  return enforceLimits({ text, blocks });
}

// ---------------------------------------------------------------------------------------------
// Attempts summary

const NUMBER_EMOJI = [":one:", ":two:", ":three:", ":four:"];

function formatScore(score: number): string {
  return Number.isInteger(score) ? String(score) : score.toFixed(2);
}

/**
 * The attempt Baton is publishing when the summary is posted (best-of-N posts it as the launch
 * ends, before the pull request exists): the best attempt with changes of the current launch.
 */
function attemptBeingPublished(task: Task): number | undefined {
  const launchRuns = new Set(task.runs.filter((run) => run.launch === task.launch).map((run) => run.runId));
  const best = bestAttempt(
    task.attemptResults.filter((result) => launchRuns.has(result.runId) && result.outcome === "changes"),
  );
  return best?.attempt;
}

export function renderAttemptsSummary(task: Task, ctx: RenderContext): SlackMessage {
  const published = task.pr?.attempt;
  const publishing = published === undefined ? attemptBeingPublished(task) : undefined;
  const attempts = [...task.attemptResults].sort((a, b) => a.attempt - b.attempt).slice(0, 20);
  const blocks: SlackBlock[] = [header(`Attempts for ${task.id}`)];
  if (attempts.length === 0) blocks.push(section("_No attempt has finished yet._"));
  for (const a of attempts) {
    const label = NUMBER_EMOJI[a.attempt - 1] ?? `#${a.attempt}`;
    const facts = [
      a.outcome === "changes"
        ? `score ${formatScore(a.score)}`
        : a.outcome === "no_change"
          ? "no change"
          : "failed",
      a.testsPassed ? "tests :white_check_mark: passed" : "tests :x: not passing",
      `${formatTokens(a.failingCommands)} failing command${a.failingCommands === 1 ? "" : "s"}`,
      `${formatTokens(a.filesChanged.length)} file${a.filesChanged.length === 1 ? "" : "s"} changed`,
    ];
    const star =
      a.attempt === published
        ? " :star: *published*"
        : a.attempt === publishing
          ? " :star: *best, publishing*"
          : "";
    const summary = a.summary.trim() !== "" ? `\n${untrustedLine(a.summary, ctx, 300)}` : "";
    const choosable = a.outcome === "changes" && a.attempt !== published && a.attempt !== publishing;
    const accessory = choosable
      ? button(`Choose #${a.attempt}`, ACTION_IDS.choose, chooseValue(task.id, a.attempt))
      : undefined;
    blocks.push(
      section(`${label} *Attempt ${a.attempt}*${star} · ${facts.join(" · ")}${summary}`, accessory),
    );
  }
  const count = Math.min(Math.max(task.attempts, attempts.length), 4);
  const emojis = NUMBER_EMOJI.slice(0, Math.max(count, 1));
  blocks.push(
    context(
      `React ${emojis.length > 1 ? `${emojis[0]} … ${emojis[emojis.length - 1]}` : emojis[0]} on this message (or use a button) to publish another attempt's result instead.`,
    ),
  );
  const fallback = `${task.id}: ${attempts.length} attempt${attempts.length === 1 ? "" : "s"} finished${published !== undefined ? `, attempt ${published} published` : publishing !== undefined ? `, publishing attempt ${publishing}` : ""}`;
  return enforceLimits({ text: fallback, blocks });
}

// ---------------------------------------------------------------------------------------------
// Help, lists, App Home, repo picker, bug offer

export function renderHelp(): SlackMessage {
  const blocks: SlackBlock[] = [
    header("Baton: delegate coding work from Slack"),
    section(
      [
        "*Ask for work* by mentioning me in a channel or thread:",
        "`@Baton [fix|plan] <what to do> [repo=owner/name] [branch=name] [attempts=1..4] [mode=plan|auto]`",
        "In a thread, the whole thread is the context, so `@Baton fix it` is enough.",
        "`plan` (or `mode=plan`) shows a plan for approval first; `mode=auto` goes straight to a pull request; `attempts=N` tries N times and publishes the best.",
      ].join("\n"),
    ),
    section(
      [
        "*In a task's thread:* `@Baton status`, `@Baton cancel`, `@Baton retry`; any other mention is a follow-up for the running task.",
        "*Slash command:* `/baton <request>`, `/baton status [T-…]`, `/baton list`, `/baton cancel T-…`, `/baton retry T-…`, `/baton budget`, `/baton config repo owner/name` (admins).",
      ].join("\n"),
    ),
    section(
      [
        "*Reactions:* :hammer_and_wrench: on any message: fix this · :white_check_mark: / :x: on a plan: approve / reject · :octagonal_sign: on a status: cancel · :repeat: on a failed task: retry · :one: … :four: on an attempts summary: choose that attempt.",
      ].join("\n"),
    ),
  ];
  return enforceLimits({ text: "Baton help: mention @Baton with what to fix, or use /baton.", blocks });
}

/** Thread permalinks by task id (lists and App Home link each task to its thread). */
export type Permalinks = Readonly<Record<string, string>>;

function taskLine(task: Task, ctx: RenderContext, permalinks: Permalinks = {}): string {
  const thread = Object.hasOwn(permalinks, task.id) ? permalinks[task.id] : undefined;
  const id = thread !== undefined ? link(thread, task.id) : task.id;
  const parts = [`*${id}*`, `${STATE_WORDS[task.state].emoji} ${stateLabel(task.state)}`];
  if (task.repo !== undefined) parts.push(inlineCode(task.repo));
  const created = Date.parse(task.createdAt);
  if (Number.isFinite(created)) parts.push(`${formatDuration(Math.max(0, ctx.now.getTime() - created))} ago`);
  if (task.pr) parts.push(link(task.pr.url, `PR #${task.pr.number}`));
  const request = task.request.text.trim();
  return `${parts.join(" · ")}${request !== "" ? `\n${untrustedLine(request, ctx, 120)}` : ""}`;
}

export function renderTaskList(
  tasks: readonly Task[],
  ctx: RenderContext,
  permalinks: Permalinks = {},
): SlackMessage {
  if (tasks.length === 0) {
    return enforceLimits({
      text: "No tasks.",
      blocks: [section("You have no tasks. Mention me with what to fix, or use `/baton <request>`.")],
    });
  }
  const line = (i: number): string => {
    const task = tasks[i];
    return task ? taskLine(task, ctx, permalinks) : "";
  };
  const blocks: SlackBlock[] = [
    section(`*Tasks* (${formatTokens(tasks.length)})`),
    ...linesToSections(tasks.length, line, 9000, "tasks"),
  ];
  return enforceLimits({ text: `${tasks.length} task${tasks.length === 1 ? "" : "s"}`, blocks });
}

export function renderHome(
  input: {
    tasks: readonly Task[];
    budget?: { spentUsd: number; limitUsd?: number };
    permalinks?: Permalinks;
  },
  ctx: RenderContext,
): SlackBlock[] {
  const blocks: SlackBlock[] = [header("Baton")];
  if (input.budget) {
    const { spentUsd, limitUsd } = input.budget;
    blocks.push(
      section(
        `*Model spend today:* ${formatCost(spentUsd)}${limitUsd !== undefined ? ` of ${formatCost(limitUsd)}` : ""}`,
      ),
    );
  }
  const active = input.tasks.filter((t) => !isTerminal(t.state));
  const recent = input.tasks.filter((t) => isTerminal(t.state));
  blocks.push(header("Active tasks"));
  if (active.length === 0) blocks.push(section("_Nothing running. Mention @Baton in a channel to start._"));
  for (const task of active.slice(0, 30)) blocks.push(section(taskLine(task, ctx, input.permalinks)));
  if (active.length > 30)
    blocks.push(context(`… and ${formatTokens(active.length - 30)} more active tasks (truncated)`));
  if (recent.length > 0) {
    blocks.push(DIVIDER, header("Recent tasks"));
    blocks.push(
      ...linesToSections(
        recent.length,
        (i) => {
          const task = recent[i];
          return task ? taskLine(task, ctx, input.permalinks) : "";
        },
        8000,
        "tasks",
      ),
    );
  }
  blocks.push(context("Type `/baton help` for everything Baton understands."));
  return enforceLimits({ text: "Baton", blocks }, { maxBlocks: SLACK_LIMITS.viewBlocks }).blocks;
}

export function renderRepoPicker(input: { requestId: string; repos: readonly string[] }): SlackMessage {
  const options = input.repos
    .map((repo) => ({ repo, value: repoPickValue(input.requestId, repo) }))
    .filter((o) => o.value.length <= SLACK_LIMITS.optionValue)
    .slice(0, SLACK_LIMITS.selectOptions)
    .map((o) => ({
      text: { type: "plain_text", text: truncatePlain(o.repo, SLACK_LIMITS.optionText) },
      value: o.value,
    }));
  if (options.length === 0) {
    const text =
      "I don't know which repository to work in. Add `repo=owner/name` to your request, or ask an admin to set this channel's default with `/baton config repo owner/name`.";
    return enforceLimits({ text, blocks: [section(text)] });
  }
  const select: SlackBlock = {
    type: "static_select",
    action_id: ACTION_IDS.repoPick,
    placeholder: { type: "plain_text", text: "Choose a repository" },
    options,
  };
  return enforceLimits({
    text: "Which repository should I work in?",
    blocks: [
      section("*Which repository should I work in?*", select),
      context("Or mention me again with `repo=owner/name`."),
    ],
  });
}

export function renderBugOffer(): SlackMessage {
  const text = "Looks like a bug report. React :hammer_and_wrench: or mention @Baton to have me try a fix.";
  return enforceLimits({
    text,
    // No task exists yet: the button's value names what it is; the thread comes from the payload.
    blocks: [section(escapeSlackText(text)), actions(button("Try a fix", ACTION_IDS.fix, "bug_offer"))],
  });
}

// ---------------------------------------------------------------------------------------------
// Limits

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Slack never sees a live `<!…>` (channel, here, everyone, subteam) from Baton. */
function defuse(text: string): string {
  return text.includes("<!") ? text.replace(/<!/g, "&lt;!") : text;
}

function clampTextObject(value: unknown, max: number): Json | undefined {
  if (!isObject(value) || typeof value["text"] !== "string") return undefined;
  const raw = value["type"] === "mrkdwn" ? defuse(value["text"]) : value["text"];
  const text = value["type"] === "mrkdwn" ? truncateMrkdwn(raw, max) : truncatePlain(raw, max);
  if (text.trim() === "") return undefined;
  return { ...value, text };
}

function clampString(value: unknown, max: number): unknown {
  return typeof value === "string" && value.length > max ? value.slice(0, max) : value;
}

function clampElement(element: unknown): Json | undefined {
  if (!isObject(element)) return undefined;
  const out: Json = { ...element };
  if ("text" in out) {
    const text = clampTextObject(out["text"], SLACK_LIMITS.buttonText);
    if (!text) return undefined;
    out["text"] = text;
  }
  out["action_id"] = clampString(out["action_id"], SLACK_LIMITS.actionId);
  out["value"] = clampString(out["value"], SLACK_LIMITS.buttonValue);
  if (Array.isArray(out["options"])) {
    const options = out["options"]
      .filter(
        (o): o is Json =>
          isObject(o) && typeof o["value"] === "string" && o["value"].length <= SLACK_LIMITS.optionValue,
      )
      .slice(0, SLACK_LIMITS.selectOptions)
      .map((o) => ({ ...o, text: clampTextObject(o["text"], SLACK_LIMITS.optionText) }))
      .filter((o) => o.text !== undefined);
    if (options.length === 0) return undefined;
    out["options"] = options;
  }
  return out;
}

/** One block within Slack's per-block limits, or undefined when nothing valid is left of it. */
function clampBlock(block: SlackBlock): SlackBlock | undefined {
  if (!isObject(block) || typeof block["type"] !== "string") return undefined;
  const out: Json = { ...block };
  if (typeof out["block_id"] === "string")
    out["block_id"] = clampString(out["block_id"], SLACK_LIMITS.blockId);
  switch (block["type"]) {
    case "section": {
      const text = "text" in block ? clampTextObject(block["text"], SLACK_LIMITS.sectionText) : undefined;
      if (text) out["text"] = text;
      else delete out["text"];
      if (Array.isArray(block["fields"])) {
        const fields = block["fields"]
          .slice(0, SLACK_LIMITS.sectionFields)
          .map((f) => clampTextObject(f, SLACK_LIMITS.fieldText))
          .filter((f): f is Json => f !== undefined);
        if (fields.length > 0) out["fields"] = fields;
        else delete out["fields"];
      }
      if (!out["text"] && !out["fields"]) return undefined;
      if ("accessory" in block) {
        const accessory = clampElement(block["accessory"]);
        if (accessory) out["accessory"] = accessory;
        else delete out["accessory"];
      }
      return out;
    }
    case "context": {
      if (!Array.isArray(block["elements"])) return undefined;
      const elements = block["elements"]
        .slice(0, SLACK_LIMITS.contextElements)
        .map((e) =>
          isObject(e) && typeof e["text"] === "string"
            ? clampTextObject(e, SLACK_LIMITS.contextText)
            : isObject(e)
              ? e
              : undefined,
        )
        .filter((e): e is Json => e !== undefined);
      if (elements.length === 0) return undefined;
      out["elements"] = elements;
      return out;
    }
    case "header": {
      const text = clampTextObject(block["text"], SLACK_LIMITS.headerText);
      if (!text) return undefined;
      out["text"] = text;
      return out;
    }
    case "actions": {
      if (!Array.isArray(block["elements"])) return undefined;
      const elements = block["elements"]
        .slice(0, SLACK_LIMITS.actionsElements)
        .map(clampElement)
        .filter((e): e is Json => e !== undefined);
      if (elements.length === 0) return undefined;
      out["elements"] = elements;
      return out;
    }
    default:
      return out;
  }
}

function isInteractive(block: SlackBlock): boolean {
  return block["type"] === "actions" || (block["type"] === "section" && "accessory" in block);
}

/** Characters of text a block shows (what the total-text limit counts). */
function textLength(block: SlackBlock): number {
  let n = 0;
  const add = (value: unknown): void => {
    if (isObject(value) && typeof value["text"] === "string") n += value["text"].length;
  };
  add(block["text"]);
  for (const key of ["fields", "elements"] as const) {
    const list = block[key];
    if (Array.isArray(list))
      for (const item of list) add(isObject(item) && isObject(item["text"]) ? item["text"] : item);
  }
  if (isObject(block["accessory"])) add(block["accessory"]["text"]);
  return n;
}

function truncationNote(what: string): SlackBlock {
  return context(`_… (truncated: ${what})_`);
}

/** At most `max` blocks; interactive blocks (buttons) survive, the cut is marked. */
function limitBlockCount(blocks: SlackBlock[], max: number): SlackBlock[] {
  if (blocks.length <= max) return blocks;
  const interactive = new Set(
    blocks
      .map((b, i) => (isInteractive(b) ? i : -1))
      .filter((i) => i !== -1)
      .slice(0, Math.floor(max / 2)),
  );
  let room = max - 1 - interactive.size;
  const keep = blocks.map((b, i) => {
    if (interactive.has(i)) return true;
    if (isInteractive(b) || room <= 0) return false;
    room--;
    return true;
  });
  const dropped = keep.filter((k) => !k).length;
  const out: SlackBlock[] = [];
  let noted = false;
  blocks.forEach((block, i) => {
    if (keep[i]) {
      out.push(block);
    } else if (!noted) {
      noted = true;
      out.push(truncationNote(`${formatTokens(dropped)} more blocks`));
    }
  });
  return out;
}

/** At most `max` characters of text in all; interactive blocks are kept whole, the cut is marked. */
function limitTotalText(blocks: SlackBlock[], max: number): SlackBlock[] {
  const total = blocks.reduce((sum, b) => sum + textLength(b), 0);
  if (total <= max) return blocks;
  const note = truncationNote("message too long");
  const interactiveText = blocks.filter(isInteractive).reduce((sum, b) => sum + textLength(b), 0);
  let budget = max - interactiveText - textLength(note);
  const kept: SlackBlock[] = [];
  let cut = false;
  for (const block of blocks) {
    if (isInteractive(block)) {
      kept.push(block);
      continue;
    }
    if (cut) continue;
    const length = textLength(block);
    if (length <= budget) {
      kept.push(block);
      budget -= length;
      continue;
    }
    cut = true;
    // Shorten the block that crosses the line if a useful amount fits; drop the rest.
    const shortened = block["type"] === "section" ? shortenSection(block, budget) : undefined;
    if (shortened) kept.push(shortened);
    kept.push(note);
  }
  return kept;
}

/** A section cut to `budget` characters of text: its text shortened, then whole fields while they fit. */
function shortenSection(block: SlackBlock, budget: number): SlackBlock | undefined {
  if (budget < 200) return undefined;
  const out: Json = { ...block };
  let room = budget;
  if (isObject(block["text"])) {
    const text = truncateMrkdwn(String(block["text"]["text"]), room);
    out["text"] = { ...block["text"], text };
    room -= text.length;
  }
  if (Array.isArray(block["fields"])) {
    const fields: Json[] = [];
    for (const field of block["fields"]) {
      const length = isObject(field) && typeof field["text"] === "string" ? field["text"].length : 0;
      if (!isObject(field) || length > room) break;
      fields.push(field);
      room -= length;
    }
    if (fields.length > 0) out["fields"] = fields;
    else delete out["fields"];
  }
  return out["text"] || out["fields"] ? out : undefined;
}

/**
 * The message within Slack's limits: ≤ 50 blocks (views: 100), section and context text ≤ 3000,
 * fields ≤ 2000, header ≤ 150, ≤ 12 000 characters of text in all, fallback ≤ 3000. Every cut is
 * visible ("… (truncated)"); buttons are kept; no live `<!…>` mass mention survives.
 */
export function enforceLimits(message: SlackMessage, options: { maxBlocks?: number } = {}): SlackMessage {
  const maxBlocks = options.maxBlocks ?? SLACK_LIMITS.messageBlocks;
  const clamped = message.blocks.map(clampBlock).filter((b): b is SlackBlock => b !== undefined);
  const counted = limitBlockCount(clamped, maxBlocks);
  const blocks = limitBlockCount(limitTotalText(counted, SLACK_LIMITS.totalText), maxBlocks);
  const fallback = truncateMrkdwn(defuse(message.text), SLACK_LIMITS.fallbackText);
  return { text: fallback.trim() === "" ? "Baton" : fallback, blocks };
}
