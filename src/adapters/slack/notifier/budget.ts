// Client-side Slack rate budgets: per bucket (a method, or a method in one channel) at most `max`
// calls in any `windowMs`, counting a call from its start and until `windowMs` after its answer, so
// Slack's own sliding window can never see more than `max` whatever the latency. Waiters are served
// by priority (lower first), then first come first served; Retry-After pauses a bucket.

export interface BudgetRule {
  max: number;
  windowMs: number;
}

export interface BudgetLease {
  /**
   * Gives the slot back; it stays counted for `windowMs` from now, unless no call was made with it
   * (`used: false`), in which case it is free at once.
   */
  release(options?: { used?: boolean }): void;
}

interface Waiter {
  priority: () => number;
  seq: number;
  resolve: (lease: BudgetLease) => void;
  reject: (error: Error) => void;
}

export class BudgetClosedError extends Error {
  constructor() {
    super("slack budget closed");
    this.name = "BudgetClosedError";
  }
}

class Bucket {
  private inFlight = 0;
  private readonly finished: number[] = [];
  private readonly waiters: Waiter[] = [];
  private pausedUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;

  constructor(
    private readonly rule: BudgetRule,
    private readonly now: () => number,
    private readonly onIdle: () => void,
  ) {}

  acquire(priority: () => number, seq: number): Promise<BudgetLease> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ priority, seq, resolve, reject });
      this.pump();
    });
  }

  pause(untilMs: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, untilMs);
  }

  idle(): boolean {
    const now = this.now();
    this.prune(now);
    // A paused bucket is not idle: dropping it would forget the Retry-After.
    return (
      this.inFlight === 0 &&
      this.waiters.length === 0 &&
      this.finished.length === 0 &&
      this.pausedUntil <= now
    );
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) w.reject(new BudgetClosedError());
  }

  private prune(now: number): void {
    while (this.finished.length > 0 && (this.finished[0] ?? 0) <= now - this.rule.windowMs)
      this.finished.shift();
  }

  private wakeAt(at: number, keepAlive = true): void {
    if (this.timer && this.timerAt <= at) {
      if (keepAlive) this.timer.ref();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.pump();
      },
      Math.max(1, at - this.now()),
    );
    // Housekeeping alone (no one waiting) must not keep the process alive.
    if (!keepAlive) this.timer.unref();
  }

  private pump(): void {
    for (;;) {
      const now = this.now();
      this.prune(now);
      if (this.waiters.length === 0) {
        if (this.idle()) {
          this.onIdle();
        } else if (this.inFlight === 0) {
          const agedOut =
            this.finished.length > 0 ? (this.finished[0] ?? now) + this.rule.windowMs : Infinity;
          const unpaused = this.pausedUntil > now ? this.pausedUntil : Infinity;
          this.wakeAt(Math.min(agedOut, unpaused), false);
        }
        return;
      }
      if (this.pausedUntil > now) {
        this.wakeAt(this.pausedUntil);
        return;
      }
      if (this.inFlight + this.finished.length >= this.rule.max) {
        // A release wakes us too; the timer covers slots that age out of the window.
        if (this.finished.length > 0) this.wakeAt((this.finished[0] ?? now) + this.rule.windowMs);
        return;
      }
      let best = 0;
      let bestPriority = Number.POSITIVE_INFINITY;
      let bestSeq = Number.POSITIVE_INFINITY;
      this.waiters.forEach((w, i) => {
        const p = w.priority();
        if (p < bestPriority || (p === bestPriority && w.seq < bestSeq)) {
          best = i;
          bestPriority = p;
          bestSeq = w.seq;
        }
      });
      const [waiter] = this.waiters.splice(best, 1);
      if (!waiter) return;
      this.inFlight += 1;
      let released = false;
      waiter.resolve({
        release: (options = {}) => {
          if (released) return;
          released = true;
          this.inFlight -= 1;
          if (options.used ?? true) this.finished.push(this.now());
          this.pump();
        },
      });
    }
  }
}

/** A set of buckets sharing one clock; idle buckets are dropped so per-channel keys do not pile up. */
export class SlackBudget {
  private readonly buckets = new Map<string, Bucket>();
  private seq = 0;
  private closed = false;

  constructor(private readonly now: () => number = Date.now) {}

  acquire(key: string, rule: BudgetRule, priority: () => number): Promise<BudgetLease> {
    if (this.closed) return Promise.reject(new BudgetClosedError());
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new Bucket(rule, this.now, () => {
        if (this.buckets.get(key) === bucket) this.buckets.delete(key);
      });
      this.buckets.set(key, bucket);
    }
    this.seq += 1;
    return bucket.acquire(priority, this.seq);
  }

  /** Honours a Retry-After: nothing more goes out of this bucket until then. */
  pause(key: string, rule: BudgetRule, untilMs: number): void {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new Bucket(rule, this.now, () => {
        if (this.buckets.get(key) === bucket) this.buckets.delete(key);
      });
      this.buckets.set(key, bucket);
    }
    bucket.pause(untilMs);
  }

  close(): void {
    this.closed = true;
    for (const b of this.buckets.values()) b.close();
    this.buckets.clear();
  }
}
