// Upstream faults through the whole product: the model answering 429/5xx or cutting its stream
// (retried, the run succeeds; persistently → a clear failure), GitHub 5xx and 422 at publish, and
// the run's token budget running out. Every task ends with exactly one terminal message, one status
// message, at most one pull request, and no secret anywhere.
import { afterEach, describe, expect, test } from "@jest/globals";
import { CHANNEL, MODEL, REPO, defaultTurn, startProduct, type Product, type Turn } from "./harness.js";

let product: Product | undefined;

afterEach(async () => {
  await product?.close();
  product = undefined;
});

const PULLS = "POST /repos/{owner}/{repo}/pulls";
const RECEIVE_PACK = "POST /{owner}/{repo}.git/git-receive-pack";

describe("upstream faults, whole product", () => {
  test("the model answers 429, then 503, then cuts its stream: retried, the run opens one pull request", async () => {
    const turn: Turn = (input) => {
      if (input.turn === 0) return { fault: { kind: "status", status: 429, retryAfterSeconds: 1 } };
      if (input.turn === 1) return { fault: { kind: "status", status: 503 } };
      if (input.turn === 2) return { ...defaultTurn(input), fault: { kind: "cut", afterChunks: 1 } };
      return defaultTurn(input);
    };
    product = await startProduct({ turn });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toContain("pull request #");
    const { taskId } = p.checkThread(thread);
    expect(p.model.requests.slice(0, 2).map((r) => r.status)).toEqual([429, 503]);
    // The third answer was a stream cut after its first chunk; the same turn was asked again.
    expect(p.model.requests[2]?.body.stream).toBe(true);
    expect(p.model.requests[3]?.body.messages).toEqual(p.model.requests[2]?.body.messages);
    expect(p.github.pulls(REPO).map((pr) => pr.head)).toEqual([`baton/${taskId.toLowerCase()}`]);
    p.checkNoLeaks();
  }, 120_000);

  test("the model failing persistently: the task fails with a clear message and no pull request", async () => {
    product = await startProduct({
      turn: () => ({ fault: { kind: "status", status: 500 } }),
      // Shorter backoff keeps the suite fast; the number of retries is the agent's own.
      agentEnv: { BATON_AGENT_RETRY_BASE_MS: "100", BATON_AGENT_RETRY_MAX_DELAY_MS: "400" },
    });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 120_000);
    expect(result.text).toMatch(/failed/);
    expect(result.text).toMatch(/model/i);
    expect(result.text).toMatch(/500/);
    p.checkThread(thread);
    expect(p.github.pulls(REPO)).toEqual([]);
    p.checkNoLeaks();
  }, 150_000);

  test("GitHub answers 502 twice when opening the pull request: retried, exactly one pull request", async () => {
    product = await startProduct();
    const p = product;
    p.github.injectFault({ route: PULLS, status: 502, times: 2 });
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toContain("pull request #");
    const { taskId } = p.checkThread(thread);
    expect(p.github.pulls(REPO).map((pr) => pr.head)).toEqual([`baton/${taskId.toLowerCase()}`]);
    expect(
      p.github
        .calls()
        .filter((c) => c.route === PULLS)
        .map((c) => c.status),
    ).toEqual([502, 502, 201]);
    p.checkNoLeaks();
  }, 120_000);

  test("GitHub answers 502 to the branch push once: retried, the branch and one pull request land", async () => {
    product = await startProduct();
    const p = product;
    p.github.injectFault({ route: RECEIVE_PACK, status: 502, times: 1 });
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toContain("pull request #");
    const { taskId } = p.checkThread(thread);
    const head = `baton/${taskId.toLowerCase()}`;
    expect(p.github.pulls(REPO).map((pr) => pr.head)).toEqual([head]);
    expect(await p.github.branchSha(REPO, head)).toEqual(expect.any(String));
    expect(
      p.github
        .calls()
        .filter((c) => c.route === RECEIVE_PACK)
        .map((c) => c.status),
    ).toContain(502);
    p.checkNoLeaks();
  }, 120_000);

  test("GitHub refusing the pull request with 422: the task fails saying so, once", async () => {
    product = await startProduct();
    const p = product;
    p.github.injectFault({ route: PULLS, status: 422, times: 10 });
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toMatch(/failed/);
    expect(result.text).toMatch(/GitHub refused/);
    p.checkThread(thread);
    expect(p.github.pulls(REPO)).toEqual([]);
    p.checkNoLeaks();
  }, 120_000);

  test("the run's token budget runs out: the task fails and the thread says which budget", async () => {
    // Every turn costs 700 tokens and never finishes; the third call is over the 1,000 token budget.
    const turn: Turn = () => ({
      toolCalls: [{ name: "shell", arguments: { command: ["true"] } }],
      usage: { prompt_tokens: 600, completion_tokens: 100 },
    });
    product = await startProduct({ turn, policy: { limits: { runTokenBudget: 1000 } } });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toMatch(/failed/);
    // The agent stops itself at the run's token budget (the gateway would refuse the next call); the
    // thread names the setting to raise.
    expect(result.text).toMatch(/token budget/);
    expect(result.text).toContain("limits.runTokenBudget");
    expect(result.text).toMatch(/\b1,?000\b/);
    p.checkThread(thread);
    expect(p.model.requests).toHaveLength(2);
    expect(p.github.pulls(REPO)).toEqual([]);
    p.checkNoLeaks();
  }, 120_000);

  test("the channel's daily budget runs out: the task fails and the thread names the channel budget", async () => {
    // Every turn costs $0.70 (700 tokens at $1,000 per million) against a $0.50 daily channel budget.
    const turn: Turn = () => ({
      toolCalls: [{ name: "shell", arguments: { command: ["true"] } }],
      usage: { prompt_tokens: 600, completion_tokens: 100 },
    });
    product = await startProduct({
      turn,
      policy: {
        channels: { [CHANNEL]: { repo: REPO, mode: "auto", budgetUsdPerDay: 0.5 } },
        models: { prices: { [MODEL]: { inputPerMTok: 1000, outputPerMTok: 1000 } } },
      },
    });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toMatch(/failed/);
    expect(result.text).toContain("daily model budget ($0.5)");
    p.checkThread(thread);
    // The refused call never reached the model.
    expect(p.model.requests).toHaveLength(1);
    expect(p.github.pulls(REPO)).toEqual([]);
    p.checkNoLeaks();
  }, 120_000);
});
