// The Notifier's client-side rate budget: window counted from answers, priorities, Retry-After pauses.
import { afterEach, describe, expect, test } from "@jest/globals";
import { BudgetClosedError, SlackBudget } from "../../../src/adapters/slack/notifier/budget.js";

const budgets: SlackBudget[] = [];
afterEach(() => {
  while (budgets.length > 0) budgets.pop()?.close();
});

function budget(): SlackBudget {
  const b = new SlackBudget();
  budgets.push(b);
  return b;
}

describe("SlackBudget", () => {
  test("at most `max` calls in any window, counted until `windowMs` after each answer", async () => {
    const b = budget();
    const rule = { max: 3, windowMs: 300 };
    const granted: number[] = [];
    const start = Date.now();
    await Promise.all(
      Array.from({ length: 7 }, async () => {
        const lease = await b.acquire("m", rule, () => 0);
        granted.push(Date.now() - start);
        await new Promise((r) => setTimeout(r, 20));
        lease.release();
      }),
    );
    granted.sort((a, b) => a - b);
    // 3 at once, 3 more once the first answers are a window old, then the last one.
    expect(granted.slice(0, 3).every((t) => t < 250)).toBe(true);
    expect(granted.slice(3, 6).every((t) => t >= 300)).toBe(true);
    expect(granted[6]).toBeGreaterThanOrEqual(600);
    // Sliding-window check over grant times: never more than 3 within 300 ms.
    for (const t of granted)
      expect(granted.filter((u) => u >= t && u < t + 300).length).toBeLessThanOrEqual(3);
  });

  test("serves lower priority numbers first, then first come first served", async () => {
    const b = budget();
    const rule = { max: 1, windowMs: 50 };
    const first = await b.acquire("m", rule, () => 0);
    const order: string[] = [];
    const waits = [
      b.acquire("m", rule, () => 2).then((l) => (order.push("progress-1"), l.release())),
      b.acquire("m", rule, () => 2).then((l) => (order.push("progress-2"), l.release())),
      b.acquire("m", rule, () => 0).then((l) => (order.push("final"), l.release())),
      b.acquire("m", rule, () => 1).then((l) => (order.push("post"), l.release())),
    ];
    first.release();
    await Promise.all(waits);
    expect(order).toEqual(["final", "post", "progress-1", "progress-2"]);
  });

  test("buckets are independent; a pause holds only its bucket", async () => {
    const b = budget();
    const rule = { max: 10, windowMs: 1000 };
    b.pause("chat.update", rule, Date.now() + 400);
    const start = Date.now();
    const other = await b.acquire("chat.postMessage:C1", rule, () => 0);
    expect(Date.now() - start).toBeLessThan(100);
    other.release();
    const paused = await b.acquire("chat.update", rule, () => 0);
    expect(Date.now() - start).toBeGreaterThanOrEqual(390);
    paused.release();
  });

  test("a pause survives the bucket going idle", async () => {
    const b = budget();
    const rule = { max: 10, windowMs: 10 };
    const lease = await b.acquire("m", rule, () => 0);
    lease.release();
    b.pause("m", rule, Date.now() + 300);
    await new Promise((r) => setTimeout(r, 50));
    const start = Date.now();
    (await b.acquire("m", rule, () => 0)).release();
    expect(Date.now() - start).toBeGreaterThanOrEqual(240);
  });

  test("close rejects waiters", async () => {
    const b = budget();
    const rule = { max: 1, windowMs: 10_000 };
    await b.acquire("m", rule, () => 0);
    const waiting = b.acquire("m", rule, () => 0);
    b.close();
    await expect(waiting).rejects.toBeInstanceOf(BudgetClosedError);
  });
});
