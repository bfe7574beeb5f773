// The agent's event stream to the runner (`POST /events`): numbered by `seq`, buffered, sent in
// batches in the background and retried while the bot is briefly away (the runner is idempotent by
// seq). Each answer carries cancellation and new thread messages, which the loop picks up.
import type { AgentEvent } from "../shared/agent-events.js";
import type { ThreadMessage } from "../shared/run-spec.js";
import type { RunnerClient } from "./runner-client.js";
import { RunnerApiError } from "./runner-client.js";

/** An event before it gets its sequence number. */
export type NewEvent = AgentEvent extends infer E
  ? E extends AgentEvent
    ? Omit<E, "seq" | "at">
    : never
  : never;

const MAX_BATCH = 200;
/** Bounded memory while the runner is away: beyond this the oldest unsent events are dropped. */
const MAX_BUFFERED = 20_000;

export interface EventStreamOptions {
  client: Pick<RunnerClient, "postEvents">;
  /** Called once when an answer says the run was cancelled. */
  onCancel?: () => void;
  /** Called when the runner refuses events for good (e.g. 401 after the token expired). */
  onFatal?: (error: Error) => void;
  retryBaseMs?: number;
}

export class EventStream {
  private seq = 0;
  private pending: AgentEvent[] = [];
  private readonly inbox: ThreadMessage[] = [];
  private readonly seenMessages = new Set<string>();
  private flushing: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private cancelledFlag = false;
  private fatal: Error | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private lastContact = Date.now();
  droppedEvents = 0;

  constructor(private readonly options: EventStreamOptions) {}

  get cancelled(): boolean {
    return this.cancelledFlag;
  }

  /** Queues an event and starts sending it; never throws and never waits for the network. */
  emit(event: NewEvent): void {
    this.seq += 1;
    this.pending.push({ ...event, seq: this.seq, at: new Date().toISOString() } as AgentEvent);
    if (this.pending.length > MAX_BUFFERED) {
      this.droppedEvents += this.pending.length - MAX_BUFFERED;
      this.pending.splice(0, this.pending.length - MAX_BUFFERED);
    }
    void this.flush();
  }

  /** New thread messages since the last call. */
  takeMessages(): ThreadMessage[] {
    return this.inbox.splice(0, this.inbox.length);
  }

  /**
   * Sends what is pending (or polls with an empty batch) and waits for the answer, at most
   * `timeoutMs`: before each model turn, so cancellation and thread messages are fresh.
   */
  async sync(timeoutMs: number): Promise<void> {
    const attempt = this.pending.length > 0 ? this.flush() : this.send([]);
    await Promise.race([attempt, new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /** Waits until every event is delivered or `timeoutMs` passes; true when all were delivered. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.length > 0 && this.fatal === null && Date.now() < deadline) {
      if (this.retryTimer !== null) {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
      }
      await Promise.race([
        this.flush(),
        new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref()),
      ]);
      if (this.pending.length > 0)
        await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, deadline - Date.now()))));
    }
    return this.pending.length === 0;
  }

  /**
   * Polls the runner every `intervalMs` while nothing else is sent (a long command emits nothing),
   * so cancellation and thread messages still arrive promptly.
   */
  startHeartbeat(intervalMs: number): void {
    if (this.heartbeat !== null) return;
    this.heartbeat = setInterval(
      () => {
        if (this.flushing !== null || this.fatal !== null || Date.now() - this.lastContact < intervalMs)
          return;
        if (this.pending.length > 0) void this.flush();
        else void this.send([]);
      },
      Math.max(50, Math.floor(intervalMs / 2)),
    );
    this.heartbeat.unref();
  }

  close(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.retryTimer = null;
    this.heartbeat = null;
  }

  private flush(): Promise<void> {
    if (this.flushing !== null) return this.flushing;
    if (this.pending.length === 0 || this.fatal !== null) return Promise.resolve();
    this.flushing = (async () => {
      try {
        while (this.pending.length > 0 && this.fatal === null) {
          const batch = this.pending.slice(0, MAX_BATCH);
          const ok = await this.send(batch);
          if (!ok) {
            this.scheduleRetry();
            return;
          }
          const sentUpTo = batch[batch.length - 1]!.seq;
          this.pending = this.pending.filter((e) => e.seq > sentUpTo);
        }
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  private async send(batch: AgentEvent[]): Promise<boolean> {
    this.lastContact = Date.now();
    try {
      const answer = await this.options.client.postEvents(batch);
      this.failures = 0;
      for (const message of answer.messages) {
        const key = `${message.ts}\u0000${message.author}`;
        if (this.seenMessages.has(key)) continue;
        this.seenMessages.add(key);
        this.inbox.push(message);
      }
      if (answer.cancelled && !this.cancelledFlag) {
        this.cancelledFlag = true;
        this.options.onCancel?.();
      }
      return true;
    } catch (error) {
      this.failures += 1;
      if (
        error instanceof RunnerApiError &&
        !error.transient &&
        error.status !== null &&
        error.status < 500
      ) {
        // 401/403/404: the run is over or the token is gone; retrying cannot help.
        this.fatal = error;
        this.options.onFatal?.(error);
      }
      return false;
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== null || this.fatal !== null) return;
    const base = this.options.retryBaseMs ?? 500;
    const delay = Math.min(base * 2 ** Math.min(this.failures, 6), 10_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.flush();
    }, delay);
    this.retryTimer.unref();
  }
}
