// Neutralises Slack control sequences in untrusted text (requests, plans, agent output) before it is
// placed in mrkdwn: no mass mentions, no forged user/channel mentions, no injected links.

const ZERO_WIDTH_JOINER = "\u200D";
const ZERO_WIDTH_SPACE = "\u200B";

const ENTITY: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

/**
 * `&`, `<`, `>` become entities, so `<!channel>`, `<@U…>`, `<#C…>` and `<url|label>` are shown as
 * typed instead of acting; bare `@channel`/`@here`/`@everyone` get a zero-width joiner after the `@`
 * (Slack may link them when a client or workflow enables `link_names`).
 */
export function escapeSlackText(text: string): string {
  return text
    .replace(/[&<>]/g, (c) => ENTITY[c] ?? c)
    .replace(/@(channel|here|everyone)\b/gi, `@${ZERO_WIDTH_JOINER}$1`);
}

/** Verbatim text in a ``` fence: escaped, and no run of backticks inside can close the fence early. */
export function codeBlock(text: string): string {
  const body = breakBacktickRuns(escapeSlackText(text));
  // An empty fence renders as literal backticks in Slack.
  return "```\n" + (body === "" ? " " : body) + "\n```";
}

/** Text in single backticks on one line: backticks and line breaks would end the span. */
export function inlineCode(text: string): string {
  const body = escapeSlackText(text)
    .replace(/`/g, "\u02CB")
    .replace(/\r\n|[\r\n]/g, " ");
  return "`" + (body.trim() === "" ? " " : body) + "`";
}

/** Inserts a zero-width space between consecutive backticks so "```" never appears. */
export function breakBacktickRuns(text: string): string {
  return text.replace(/`(?=`)/g, "`" + ZERO_WIDTH_SPACE);
}
