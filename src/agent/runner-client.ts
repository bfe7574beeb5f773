// HTTP client for the runner API (CONTRACT §7): every call carries the run token; transient
// failures (network errors, 5xx, 429) are retried with backoff until a deadline, others are final.
import { z } from "zod";
import { PostEventsAnswer, type AgentEvent } from "../shared/agent-events.js";
import { RunResult } from "../shared/run-result.js";
import { RunSpec } from "../shared/run-spec.js";
import { runnerPaths } from "../shared/runner-api.js";

/** A bundle may be up to 50 MiB: give its upload longer than an ordinary call. */
const BUNDLE_UPLOAD_TIMEOUT_MS = 5 * 60_000;

export class RunnerApiError extends Error {
  override readonly name = "RunnerApiError";
  constructor(
    message: string,
    readonly status: number | null,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

export interface RunnerClientOptions {
  baseUrl: string;
  token: string;
  /** Per-request timeout. */
  requestTimeoutMs?: number;
}

export interface RetryOptions {
  /** Give up after this long (ms). */
  retryForMs: number;
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

export class RunnerClient {
  private readonly baseUrl: string;
  private readonly requestTimeoutMs: number;

  constructor(private readonly options: RunnerClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  /** One request, no retry. Throws RunnerApiError (transient or not). */
  private async request(
    method: string,
    path: string,
    body?: { json: unknown } | { bytes: Buffer },
    timeoutMs = this.requestTimeoutMs,
  ): Promise<unknown> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}` };
    let payload: string | Uint8Array | undefined;
    if (body !== undefined && "json" in body) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body.json);
    } else if (body !== undefined) {
      headers["content-type"] = "application/octet-stream";
      payload = new Uint8Array(body.bytes);
    }
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: payload,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new RunnerApiError(`${method} ${path}: ${(error as Error).message}`, null, true);
    }
    const text = await response.text().catch(() => "");
    if (!response.ok) {
      const transient = response.status >= 500 || response.status === 429 || response.status === 408;
      throw new RunnerApiError(
        `${method} ${path}: HTTP ${response.status} ${text.slice(0, 300)}`,
        response.status,
        transient,
      );
    }
    if (text === "") return null;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new RunnerApiError(`${method} ${path}: the answer is not JSON`, response.status, false);
    }
  }

  private async withRetry<T>(what: () => Promise<T>, retry: RetryOptions): Promise<T> {
    const deadline = Date.now() + retry.retryForMs;
    let delay = 250;
    for (;;) {
      try {
        return await what();
      } catch (error) {
        const transient = error instanceof RunnerApiError && error.transient;
        if (!transient || Date.now() + delay > deadline || retry.signal?.aborted === true) throw error;
        await sleep(delay, retry.signal);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  async getRunSpec(retry: RetryOptions = { retryForMs: 60_000 }): Promise<RunSpec> {
    const body = await this.withRetry(() => this.request("GET", runnerPaths.run), retry);
    const spec = RunSpec.safeParse(body);
    if (!spec.success)
      throw new RunnerApiError(`the run spec is invalid: ${z.prettifyError(spec.error)}`, null, false);
    return spec.data;
  }

  /** One attempt: the event stream owns buffering and retries. */
  async postEvents(events: AgentEvent[]): Promise<PostEventsAnswer> {
    const body = await this.request("POST", runnerPaths.events, { json: { events } });
    const answer = PostEventsAnswer.safeParse(body);
    if (!answer.success)
      throw new RunnerApiError(`the events answer is invalid: ${z.prettifyError(answer.error)}`, null, false);
    return answer.data;
  }

  async putBundle(bundle: Buffer, retry: RetryOptions = { retryForMs: 120_000 }): Promise<void> {
    await this.withRetry(
      () => this.request("PUT", runnerPaths.bundle, { bytes: bundle }, BUNDLE_UPLOAD_TIMEOUT_MS),
      retry,
    );
  }

  async postResult(result: RunResult, retry: RetryOptions = { retryForMs: 120_000 }): Promise<void> {
    const checked = RunResult.parse(result);
    await this.withRetry(() => this.request("POST", runnerPaths.result, { json: checked }), retry);
  }
}
