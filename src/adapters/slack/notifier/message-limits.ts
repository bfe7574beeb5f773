// Last check of a rendered message against Slack's payload limits before it is sent. render.ts keeps
// messages within them already; if a bug ever slips through, a plain-text message goes out instead
// of a post Slack would refuse (which would leave the thread silent).
import { SLACK_LIMITS, TRUNCATED, type SlackMessage } from "../../../core/render.js";
import type { SlackBlock } from "../../../core/ports/chat.js";

/** Slack's own hard cap for `text`. */
export const SLACK_MAX_TEXT = 40_000;

function textLength(value: unknown): number {
  if (value === null || typeof value !== "object") return 0;
  const text = (value as { text?: unknown }).text;
  return typeof text === "string" ? text.length : 0;
}

/** The first limit the message breaks, or undefined when Slack will take it. */
export function slackLimitViolation(message: { text: string; blocks?: SlackBlock[] }): string | undefined {
  if (message.text.length > SLACK_MAX_TEXT) return "text too long";
  const blocks = message.blocks ?? [];
  if (blocks.length > SLACK_LIMITS.messageBlocks) return "too many blocks";
  for (const block of blocks) {
    switch (block.type) {
      case "section": {
        if (textLength(block.text) > SLACK_LIMITS.sectionText) return "section text too long";
        const fields = block.fields;
        if (Array.isArray(fields)) {
          if (fields.length > SLACK_LIMITS.sectionFields) return "too many section fields";
          if (fields.some((f) => textLength(f) > SLACK_LIMITS.fieldText)) return "section field too long";
        }
        break;
      }
      case "header":
        if (textLength(block.text) > SLACK_LIMITS.headerText) return "header too long";
        break;
      case "context": {
        const elements = block.elements;
        if (Array.isArray(elements) && elements.length > SLACK_LIMITS.contextElements)
          return "too many context elements";
        break;
      }
      case "actions": {
        const elements = block.elements;
        if (Array.isArray(elements) && elements.length > SLACK_LIMITS.actionsElements)
          return "too many actions";
        break;
      }
      default:
        break;
    }
  }
  return undefined;
}

/** The message itself when it is within limits, else its fallback text alone, cut visibly. */
export function withinSlackLimits(message: SlackMessage): { message: SlackMessage; violation?: string } {
  const violation = slackLimitViolation(message);
  if (violation === undefined) return { message };
  const max = SLACK_LIMITS.fallbackText;
  const text =
    message.text.length > max ? message.text.slice(0, max - TRUNCATED.length) + TRUNCATED : message.text;
  return { message: { text, blocks: [] }, violation };
}
