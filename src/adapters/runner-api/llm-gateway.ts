// The model gateway (`/runner/v1/llm/v1/…`, CONTRACT §7): agents call an OpenAI-compatible endpoint
// with their run token; Baton forwards to OPENAI_BASE_URL with its own key (the agent never sees
// it), forces the configured model, meters tokens and cost per run, task, channel and user (from the
// upstream `usage`; streams get `stream_options.include_usage`), and refuses calls with an
// OpenAI-style 429 `budget_exhausted` once the run's token budget or the channel's daily budget is
// spent. Usage totals reach the task as coalesced `run.progress {usage}` events.
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { Policy } from "../../config/policy.js";
import type { Clock } from "../../core/ports/clock.js";
import type { TaskFailure } from "../../core/task.js";
import type { Logger } from "../../shared/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { BudgetKind, RunRecord, RunRecords } from "../redis/run-records.js";
import type { BudgetReader } from "../../core/ports/budget.js";
import { costOf, type UsageMeter } from "../redis/usage.js";
import { HttpError, readJson, sendJson } from "./http.js";

export const MAX_LLM_REQUEST_BYTES = 16 * 1024 * 1024;

export interface ModelUpstream {
  baseUrl: string;
  apiKey?: string;
  /** BATON_MODEL: what every call is sent upstream as. */
  model: string;
}

export interface LlmGatewayDeps {
  records: RunRecords;
  usage: UsageMeter;
  budget: BudgetReader;
  policy: Policy;
  upstream: ModelUpstream;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Called after a call was metered (the runner API coalesces it into a task event). */
  onMetered: (record: RunRecord) => void;
  fetch?: typeof fetch;
}

/** The task failure for a spent budget: one sentence saying which budget. */
export function budgetFailure(kind: BudgetKind, policy: Policy, channelId: string): TaskFailure {
  if (kind === "run") {
    return {
      code: "budget_exhausted",
      message: `The run used up its model token budget (${policy.limits.runTokenBudget.toLocaleString("en-US")} tokens); split the request or ask an admin to raise limits.runTokenBudget.`,
    };
  }
  const usd = policy.channels[channelId]?.budgetUsdPerDay;
  return {
    code: "budget_exhausted",
    message: `This channel's daily model budget${usd !== undefined ? ` ($${usd})` : ""} is spent; try again tomorrow or ask an admin to raise budgetUsdPerDay.`,
  };
}

const UpstreamUsage = z
  .object({
    prompt_tokens: z.number().optional(),
    completion_tokens: z.number().optional(),
    input_tokens: z.number().optional(),
    output_tokens: z.number().optional(),
    prompt_tokens_details: z.object({ cached_tokens: z.number().optional() }).nullish(),
    input_tokens_details: z.object({ cached_tokens: z.number().optional() }).nullish(),
  })
  .passthrough();

interface Counted {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** Token counts from a Chat Completions or Responses `usage` object. */
export function usageFrom(value: unknown): Counted | undefined {
  const parsed = UpstreamUsage.safeParse(value);
  if (!parsed.success) return undefined;
  const u = parsed.data;
  const prompt = u.prompt_tokens ?? u.input_tokens;
  const completion = u.completion_tokens ?? u.output_tokens;
  if (prompt === undefined && completion === undefined) return undefined;
  const cached = u.prompt_tokens_details?.cached_tokens ?? u.input_tokens_details?.cached_tokens ?? 0;
  const int = (n: number | undefined) => Math.max(0, Math.round(n ?? 0));
  return { promptTokens: int(prompt), completionTokens: int(completion), cachedTokens: int(cached) };
}

/** Usage in one streamed SSE `data:` payload (chat chunk with `usage`, or Responses `response.completed`). */
function usageInEvent(data: unknown): Counted | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as Record<string, unknown>;
  if (d.usage) return usageFrom(d.usage);
  const response = d.response as Record<string, unknown> | undefined;
  if (response && typeof response === "object" && response.usage) return usageFrom(response.usage);
  return undefined;
}

function openAiError(res: ServerResponse, status: number, type: string, message: string): void {
  sendJson(res, status, { error: { type, code: type, message, param: null } });
}

export interface LlmGateway {
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    record: RunRecord,
    endpoint: "chat/completions" | "responses",
  ): Promise<void>;
}

export function createLlmGateway(deps: LlmGatewayDeps): LlmGateway {
  const doFetch = deps.fetch ?? fetch;
  const { policy, logger } = deps;

  /** Which budget is spent, if any (checked before each call; one call may overshoot a little). */
  const spentBudget = async (record: RunRecord): Promise<BudgetKind | undefined> => {
    const run = await deps.usage.runTotals(record.runId);
    if (run.promptTokens + run.completionTokens >= policy.limits.runTokenBudget) return "run";
    const perDay = policy.channels[record.channelId]?.budgetUsdPerDay;
    if (perDay !== undefined && (await deps.budget.channelSpentToday(record.channelId)) >= perDay)
      return "channel";
    return undefined;
  };

  const meter = async (record: RunRecord, counted: Counted) => {
    const model = deps.upstream.model;
    const costUsd = costOf(policy.models.prices, model, counted);
    await deps.usage.record({
      runId: record.runId,
      taskId: record.taskId,
      channelId: record.channelId,
      userId: record.userId,
      ...counted,
      costUsd,
      at: deps.clock.now(),
    });
    deps.metrics.modelTokens.inc({ kind: "prompt", model }, counted.promptTokens);
    deps.metrics.modelTokens.inc({ kind: "completion", model }, counted.completionTokens);
    deps.metrics.modelTokens.inc({ kind: "cached", model }, counted.cachedTokens);
    if (costUsd > 0) deps.metrics.modelCostUsd.inc({ model }, costUsd);
    deps.onMetered(record);
  };

  return {
    async handle(req, res, record, endpoint) {
      const spent = await spentBudget(record);
      if (spent) {
        await deps.records.setBudgetExhausted(record.runId, spent);
        logger.warn(
          { runId: record.runId, taskId: record.taskId, budget: spent },
          "model call refused: budget exhausted",
        );
        openAiError(res, 429, "budget_exhausted", budgetFailure(spent, policy, record.channelId).message);
        return;
      }
      const body = await readJson(req, MAX_LLM_REQUEST_BYTES);
      if (typeof body !== "object" || body === null || Array.isArray(body))
        throw new HttpError(400, "body must be a JSON object");
      const request: Record<string, unknown> = {
        ...(body as Record<string, unknown>),
        model: deps.upstream.model,
      };
      const stream = request.stream === true;
      if (stream && endpoint === "chat/completions") {
        const given =
          typeof request.stream_options === "object" && request.stream_options !== null
            ? request.stream_options
            : {};
        request.stream_options = { ...given, include_usage: true };
      }

      const abort = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) abort.abort();
      });
      let upstream: Response;
      try {
        upstream = await doFetch(`${deps.upstream.baseUrl.replace(/\/+$/, "")}/${endpoint}`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: stream ? "text/event-stream" : "application/json",
            // Baton's key, never the agent's token: the agent's Authorization is not forwarded.
            ...(deps.upstream.apiKey ? { authorization: `Bearer ${deps.upstream.apiKey}` } : {}),
          },
          body: JSON.stringify(request),
          signal: abort.signal,
        });
      } catch (error) {
        logger.warn({ runId: record.runId, err: error }, "model endpoint unreachable");
        openAiError(res, 502, "upstream_error", "The model endpoint could not be reached.");
        return;
      }

      const contentType = upstream.headers.get("content-type") ?? "application/json";
      const isStream = contentType.includes("text/event-stream");
      if (!isStream || !upstream.body) {
        const text = await upstream.text();
        if (upstream.ok) {
          try {
            const counted = usageFrom((JSON.parse(text) as { usage?: unknown }).usage);
            if (counted) await meter(record, counted);
          } catch (error) {
            logger.warn({ runId: record.runId, err: error }, "model answer without readable usage");
          }
        }
        res.writeHead(upstream.status, { "content-type": contentType, "cache-control": "no-store" });
        res.end(text);
        return;
      }

      res.writeHead(upstream.status, {
        "content-type": contentType,
        "cache-control": "no-store",
        connection: "keep-alive",
      });
      const decoder = new TextDecoder();
      let pending = "";
      let counted: Counted | undefined;
      const scan = (text: string) => {
        pending += text;
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline).replace(/\r$/, "");
          pending = pending.slice(newline + 1);
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "" || data === "[DONE]") continue;
          try {
            counted = usageInEvent(JSON.parse(data)) ?? counted;
          } catch {
            // Not JSON: passed through untouched.
          }
        }
      };
      try {
        for await (const chunk of upstream.body) {
          const bytes = chunk as Uint8Array;
          scan(decoder.decode(bytes, { stream: true }));
          if (res.destroyed) break;
          if (!res.write(bytes)) {
            await new Promise<void>((done) => {
              res.once("drain", done);
              res.once("close", done);
            });
          }
        }
      } catch (error) {
        logger.warn({ runId: record.runId, err: error }, "model stream cut");
      } finally {
        res.end();
        // Whatever was used is billed, even when the stream broke off after the usage chunk.
        if (counted)
          await meter(record, counted).catch((error: unknown) =>
            logger.error({ runId: record.runId, err: error }, "metering failed"),
          );
      }
    },
  };
}
