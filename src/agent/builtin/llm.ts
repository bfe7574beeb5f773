// One model turn over the openai SDK (Chat Completions, streaming, tool calls), with the retry
// policy: 429/5xx/connection errors/cut or stalled streams are retried with backoff within the
// run's limits; budget refusals (402, or 429 with a budget error) and other 4xx end the run.
import { APIError, APIUserAbortError, OpenAI } from "openai";
import type {
  ChatCompletionChunk,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from "openai/resources/chat/completions";
import type { EngineTuning, FailureCode } from "../engine.js";

export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface ModelTurn {
  content: string;
  toolCalls: ToolCall[];
  finishReason: string | null;
  usage: { promptTokens: number; completionTokens: number; cachedTokens: number } | null;
}

export class ModelFailure extends Error {
  override readonly name = "ModelFailure";
  constructor(
    readonly code: FailureCode,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** A failure worth retrying, with the delay the server asked for (ms) if any. */
class Transient extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | null,
  ) {
    super(message);
  }
}

export interface ModelClientOptions {
  baseUrl: string;
  apiKey: string;
  model: string;
  tuning: EngineTuning;
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

function isBudgetError(error: APIError): boolean {
  if (error.status === 402) return true;
  const body = JSON.stringify(error.error ?? {}).toLowerCase();
  return error.status === 429 && (body.includes("budget") || body.includes("insufficient_quota"));
}

function retryAfterMs(headers: Headers | undefined): number | null {
  const value = headers?.get("retry-after-ms") ?? null;
  if (value !== null && Number.isFinite(Number(value))) return Number(value);
  const seconds = headers?.get("retry-after") ?? null;
  if (seconds === null) return null;
  if (Number.isFinite(Number(seconds))) return Number(seconds) * 1000;
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

export class ModelClient {
  private readonly client: OpenAI;

  constructor(private readonly options: ModelClientOptions) {
    // Our own retry policy applies, so the SDK's is off; the idle timer replaces its timeout.
    this.client = new OpenAI({
      baseURL: options.baseUrl,
      apiKey: options.apiKey,
      maxRetries: 0,
      timeout: 24 * 3600_000,
    });
  }

  /** A completed turn, or throws ModelFailure (retries exhausted, budget, permanent error, abort). */
  async turn(
    messages: ChatCompletionMessageParam[],
    tools: ChatCompletionTool[],
    deadline: number,
    signal: AbortSignal,
  ): Promise<ModelTurn> {
    const { tuning } = this.options;
    let lastReason = "";
    for (let attempt = 1; attempt <= tuning.maxModelAttempts; attempt++) {
      if (signal.aborted) throw new ModelFailure("cancelled", "the run was stopped", false);
      try {
        return await this.once(messages, tools, deadline, signal);
      } catch (error) {
        if (error instanceof ModelFailure) throw error;
        if (!(error instanceof Transient)) throw error;
        lastReason = error.message;
        if (attempt === tuning.maxModelAttempts) break;
        const backoff = Math.min(tuning.retryBaseMs * 2 ** (attempt - 1), tuning.retryMaxDelayMs);
        const jitter = Math.floor(Math.random() * Math.min(250, backoff / 4));
        const delay = Math.max(error.retryAfterMs ?? 0, backoff + jitter);
        if (Date.now() + delay >= deadline) {
          throw new ModelFailure(
            "model_unavailable",
            `the model is unavailable (${lastReason}) and the run's time is up`,
            true,
          );
        }
        this.options.onRetry?.({ attempt, delayMs: delay, reason: lastReason });
        await sleep(delay, signal);
      }
    }
    throw new ModelFailure(
      "model_unavailable",
      `the model is unavailable after ${tuning.maxModelAttempts} attempts: ${lastReason}`,
      true,
    );
  }

  private async once(
    messages: ChatCompletionMessageParam[],
    tools: ChatCompletionTool[],
    deadline: number,
    signal: AbortSignal,
  ): Promise<ModelTurn> {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    let stalled = false;
    let timedOut = false;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        stalled = true;
        controller.abort();
      }, this.options.tuning.modelIdleTimeoutMs);
    };
    const wall = setTimeout(
      () => {
        timedOut = true;
        controller.abort();
      },
      Math.max(0, deadline - Date.now()),
    );
    const content: string[] = [];
    const calls = new Map<number, ToolCall>();
    let finishReason: string | null = null;
    let usage: ModelTurn["usage"] = null;
    try {
      arm();
      const stream = await this.client.chat.completions.create(
        {
          model: this.options.model,
          messages,
          ...(tools.length > 0 ? { tools, tool_choice: "auto" as const } : {}),
          stream: true,
          stream_options: { include_usage: true },
        },
        { signal: controller.signal },
      );
      for await (const chunk of stream as AsyncIterable<ChatCompletionChunk>) {
        arm();
        if (chunk.usage) {
          usage = {
            promptTokens: chunk.usage.prompt_tokens,
            completionTokens: chunk.usage.completion_tokens,
            cachedTokens: chunk.usage.prompt_tokens_details?.cached_tokens ?? 0,
          };
        }
        const choice = chunk.choices[0];
        if (choice === undefined) continue;
        if (choice.delta.content) content.push(choice.delta.content);
        for (const call of choice.delta.tool_calls ?? []) {
          const existing = calls.get(call.index) ?? { id: "", name: "", arguments: "" };
          if (call.id) existing.id = call.id;
          if (call.function?.name) existing.name += call.function.name;
          if (call.function?.arguments) existing.arguments += call.function.arguments;
          calls.set(call.index, existing);
        }
        if (choice.finish_reason) finishReason = choice.finish_reason;
      }
    } catch (error) {
      if (timedOut)
        throw new ModelFailure(
          "timeout",
          "the run's wall-clock limit was reached during a model call",
          false,
        );
      if (stalled)
        throw new Transient(
          `the model stream stalled for ${this.options.tuning.modelIdleTimeoutMs} ms`,
          null,
        );
      if (signal.aborted) throw new ModelFailure("cancelled", "the run was stopped", false);
      if (error instanceof APIUserAbortError) throw new Transient("the model call was aborted", null);
      if (error instanceof APIError && error.status !== undefined) {
        if (isBudgetError(error))
          throw new ModelFailure("budget_exhausted", "the model budget for this run is used up", false);
        if (error.status === 429 || error.status === 408 || error.status === 409 || error.status >= 500) {
          throw new Transient(`HTTP ${error.status}`, retryAfterMs(error.headers));
        }
        throw new ModelFailure(
          "model_error",
          `the model refused the request (HTTP ${error.status}): ${error.message.slice(0, 500)}`,
          false,
        );
      }
      // Connection errors and streams cut mid-way (the SDK surfaces them as plain errors).
      throw new Transient(`the model connection failed: ${(error as Error).message.slice(0, 300)}`, null);
    } finally {
      clearTimeout(idle);
      clearTimeout(wall);
      signal.removeEventListener("abort", onAbort);
    }
    if (finishReason === null)
      throw new Transient("the model stream ended before the answer was complete", null);
    const toolCalls = [...calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, c]) => ({ ...c, id: c.id === "" ? `call_${index}` : c.id }));
    return { content: content.join(""), toolCalls, finishReason, usage };
  }
}
