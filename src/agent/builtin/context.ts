// The conversation sent to the model, kept bounded. The prefix (system prompt + task) never
// changes, so prompt caching keeps working; when the history grows past a high watermark, older
// tool outputs are elided first, then the oldest steps are dropped, down to a low watermark (the
// hysteresis keeps the prefix of the history stable for many turns between compactions). Thread
// messages are never dropped, and the current plan is restated whenever steps were removed.
import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionMessageParam,
  ChatCompletionToolMessageParam,
} from "openai/resources/chat/completions";
import type { PlanStep } from "../../shared/agent-events.js";

interface Turn {
  messages: ChatCompletionMessageParam[];
  /** Thread messages and nudges that must survive compaction. */
  pinned: boolean;
  elided: boolean;
  size: number;
}

export interface ConversationOptions {
  highChars: number;
  lowChars: number;
  /** The most recent steps are never elided. */
  keepRecentTurns?: number;
}

const ELIDE_OUTPUT_OVER = 400;
const ELIDE_ARGUMENT_OVER = 600;

function sizeOf(messages: ChatCompletionMessageParam[]): number {
  return JSON.stringify(messages).length;
}

/** Shortens long string values inside a tool call's JSON arguments, keeping it valid JSON. */
function shortenArguments(json: string): string {
  if (json.length <= ELIDE_ARGUMENT_OVER) return json;
  try {
    const value = JSON.parse(json) as unknown;
    const shorten = (v: unknown): unknown => {
      if (typeof v === "string")
        return v.length > 200 ? `${v.slice(0, 200)}… [${v.length - 200} characters elided]` : v;
      if (Array.isArray(v)) return v.map(shorten);
      if (v !== null && typeof v === "object")
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shorten(x)]));
      return v;
    };
    return JSON.stringify(shorten(value));
  } catch {
    return JSON.stringify({ elided: `${json.length} characters of arguments` });
  }
}

export class Conversation {
  private readonly turns: Turn[] = [];
  private droppedSteps = 0;
  private plan: PlanStep[] | null = null;
  private note: ChatCompletionMessageParam | null = null;
  private readonly keepRecent: number;

  constructor(
    private readonly prefix: ChatCompletionMessageParam[],
    private readonly options: ConversationOptions,
  ) {
    this.keepRecent = options.keepRecentTurns ?? 4;
  }

  setPlan(steps: PlanStep[]): void {
    this.plan = steps;
  }

  addUserMessage(text: string): void {
    this.push([{ role: "user", content: text }], true);
  }

  addStep(
    assistant: ChatCompletionAssistantMessageParam,
    toolResults: ChatCompletionToolMessageParam[],
  ): void {
    this.push([assistant, ...toolResults], false);
  }

  private push(messages: ChatCompletionMessageParam[], pinned: boolean): void {
    this.turns.push({ messages, pinned, elided: false, size: sizeOf(messages) });
  }

  /** Characters of the whole conversation as it would be sent now. */
  get size(): number {
    return (
      sizeOf(this.prefix) +
      (this.note === null ? 0 : sizeOf([this.note])) +
      this.turns.reduce((n, t) => n + t.size, 0)
    );
  }

  /** The messages for the next request (compacting first when over the high watermark). */
  messages(): ChatCompletionMessageParam[] {
    if (this.size > this.options.highChars) this.compact();
    return [
      ...this.prefix,
      ...(this.note === null ? [] : [this.note]),
      ...this.turns.flatMap((t) => t.messages),
    ];
  }

  private compact(): void {
    const low = this.options.lowChars;
    const candidates = this.turns.length - this.keepRecent;
    // 1. Elide old tool outputs and long arguments, oldest first.
    for (let i = 0; i < candidates && this.size > low; i++) {
      const turn = this.turns[i]!;
      if (turn.pinned || turn.elided) continue;
      turn.messages = turn.messages.map((m) => {
        if (m.role === "tool" && typeof m.content === "string" && m.content.length > ELIDE_OUTPUT_OVER) {
          return {
            ...m,
            content: `${m.content.slice(0, 200)}\n[… ${m.content.length - 200} characters of older output elided; run the tool again if you need them]`,
          };
        }
        if (m.role === "assistant" && m.tool_calls !== undefined) {
          return {
            ...m,
            tool_calls: m.tool_calls.map((c) =>
              c.type === "function" && c.function.name !== "update_plan"
                ? { ...c, function: { ...c.function, arguments: shortenArguments(c.function.arguments) } }
                : c,
            ),
          };
        }
        return m;
      });
      turn.elided = true;
      turn.size = sizeOf(turn.messages);
    }
    // 2. Drop the oldest steps (an assistant message with its tool results goes as a whole).
    let dropped = 0;
    for (let i = 0; i < this.turns.length - this.keepRecent && this.size > low;) {
      const turn = this.turns[i]!;
      if (turn.pinned) {
        i++;
        continue;
      }
      this.turns.splice(i, 1);
      dropped++;
      // Re-measure with the note that will replace them.
      this.droppedSteps++;
      this.note = this.noteMessage();
    }
    if (dropped > 0) this.note = this.noteMessage();
  }

  private noteMessage(): ChatCompletionMessageParam {
    const plan =
      this.plan === null
        ? ""
        : `\nYour current plan:\n${this.plan.map((s) => `- [${s.status}] ${s.step}`).join("\n")}`;
    return {
      role: "user",
      content: `[Context note: ${this.droppedSteps} earlier steps were removed to keep the conversation within limits. Their effects on the files remain; re-read files if needed.]${plan}`,
    };
  }
}
