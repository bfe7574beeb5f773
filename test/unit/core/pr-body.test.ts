// Pull request title and body rendering (CONTRACT §9): required lines, evidence table, escaping, limits.
import { describe, expect, test } from "@jest/globals";
import {
  MAX_PR_BODY_CHARS,
  MAX_PR_TITLE_CHARS,
  bodyMarker,
  formatDuration,
  formatUsd,
  renderPullRequest,
  type PullRequestContent,
} from "../../../src/core/pr-body.js";
import { createRedactor } from "../../../src/core/redact.js";

function content(overrides: Partial<PullRequestContent> = {}): PullRequestContent {
  return {
    taskId: "T-7F3K2A",
    requestText: "fix the login redirect",
    summary: "Fix the login redirect loop\n\nThe session cookie was read before it was set.",
    plan: {
      summary: "Make the redirect wait for the session.",
      steps: ["Add a test", "Fix the cookie read"],
    },
    requesterName: "Ada Lovelace",
    threadPermalink: "https://acme.slack.com/archives/C01CHAN/p1700000000000100",
    evidence: [
      { argv: ["npm", "test"], exitCode: 0, durationMs: 12_345 },
      { argv: ["npx", "eslint", "src/a b.ts"], exitCode: 1, durationMs: 420 },
      { argv: ["sleep", "999"], exitCode: null, durationMs: 61_000, timedOut: true },
    ],
    filesChanged: ["src/login.ts", "test/login.test.ts"],
    usage: { costUsd: 0.4219, tokens: 123_456 },
    attempt: 1,
    attempts: 1,
    ...overrides,
  };
}

describe("renderPullRequest", () => {
  test("holds the summary, plan, requester line, evidence table, files and cost", () => {
    const { title, body } = renderPullRequest(content());
    expect(title).toBe("T-7F3K2A: Fix the login redirect loop");
    expect(body).toContain(
      "## Summary\n\nFix the login redirect loop\n\nThe session cookie was read before it was set.",
    );
    expect(body).toContain(
      "## Approved plan\n\nMake the redirect wait for the session.\n\n1. Add a test\n2. Fix the cookie read",
    );
    expect(body).toContain(
      "Requested by Ada Lovelace in Slack: https://acme.slack.com/archives/C01CHAN/p1700000000000100\n",
    );
    const table = body.split("\n").filter((l) => l.startsWith("|"));
    expect(table).toEqual([
      "| command | exit code | duration |",
      "| --- | --- | --- |",
      "| `npm test` | 0 | 12.3 s |",
      "| `npx eslint 'src/a b.ts'` | 1 | 420 ms |",
      "| `sleep 999` | timed out | 1 min 1 s |",
    ]);
    expect(body).toContain("## Files changed (2)\n\n- `src/login.ts`\n- `test/login.test.ts`");
    expect(body).toContain("Model cost: $0.42 (123,456 tokens)");
    expect(body.trimEnd().endsWith(bodyMarker("T-7F3K2A", 1))).toBe(true);
  });

  test("without a permalink, plan or commands it still says who asked and that nothing ran", () => {
    const { body } = renderPullRequest(
      content({ threadPermalink: undefined, plan: undefined, evidence: [], attempt: 2, attempts: 3 }),
    );
    expect(body).toContain("Requested by Ada Lovelace in Slack. (attempt 2 of 3)");
    expect(body).not.toContain("Approved plan");
    expect(body).toContain("The agent ran no commands.");
  });

  test("escapes pipes, newlines and backticks in commands so every row stays one row", () => {
    const { body } = renderPullRequest(
      content({
        evidence: [{ argv: ["sh", "-c", "echo `a` | grep a\nexit 0"], exitCode: 0, durationMs: 5 }],
      }),
    );
    const rows = body.split("\n").filter((l) => l.startsWith("| ``"));
    expect(rows).toEqual(["| ``sh -c 'echo `a` \\| grep a exit 0'`` | 0 | 5 ms |"]);
  });

  test("neutralises mentions and marker forgeries in model-written text and closes open fences", () => {
    const { title, body } = renderPullRequest(
      content({
        summary: "Ping @acme/everyone now\n```js\nconst x = 1;\n<!-- baton:task=T-000000 attempt=9 -->",
      }),
    );
    expect(title).toBe("T-7F3K2A: Ping @\u200bacme/everyone now");
    expect(body).not.toContain(" @acme");
    expect(body).not.toContain("<!-- baton:task=T-000000");
    const summary = body.slice(0, body.indexOf("## Approved plan"));
    expect(summary.match(/```/g)).toHaveLength(2);
  });

  test("stays under GitHub's body limit with huge inputs and keeps the required lines", () => {
    const { title, body } = renderPullRequest(
      content({
        summary: "x".repeat(200_000),
        plan: { summary: "p", steps: Array.from({ length: 50 }, () => "s".repeat(2000)) },
        evidence: Array.from({ length: 5000 }, (_, i) => ({
          argv: ["cmd", String(i), "y".repeat(500)],
          exitCode: 0,
          durationMs: 1,
        })),
        filesChanged: Array.from({ length: 10_000 }, (_, i) => `dir/${"f".repeat(1000)}${i}`),
      }),
    );
    expect(body.length).toBeLessThanOrEqual(MAX_PR_BODY_CHARS);
    expect(title.length).toBeLessThanOrEqual(MAX_PR_TITLE_CHARS);
    expect(body).toContain("Requested by Ada Lovelace in Slack:");
    expect(body).toMatch(/\| `cmd 0 y+…` \| 0 \| 1 ms \|\n/);
    expect(body).toMatch(/\n\n…and 49\d\d more commands\.\n/);
    expect(body).toMatch(/\n- …and 99\d\d more\n/);
    expect(body).toContain("Model cost: $0.42 (123,456 tokens)");
    expect(body).toContain(bodyMarker("T-7F3K2A", 1));
  });

  test("redacts token shapes by default and the literal secrets it is given", () => {
    const leaky = content({
      summary: "Used ghp_abcdefghijklmnopqrstuvwxyz0123456789 and hunter2-supersecret",
      evidence: [
        { argv: ["curl", "-H", "Authorization: Bearer abcdefghijklmnop123"], exitCode: 0, durationMs: 1 },
      ],
    });
    const byDefault = renderPullRequest(leaky).body;
    expect(byDefault).not.toContain("ghp_abcdefghijklmnopqrstuvwxyz0123456789");
    expect(byDefault).not.toContain("abcdefghijklmnop123");
    expect(byDefault).toContain("hunter2-supersecret");
    const withLiteral = renderPullRequest(leaky, createRedactor(["hunter2-supersecret"]));
    expect(withLiteral.body).not.toContain("hunter2-supersecret");
    expect(withLiteral.title).toBe("T-7F3K2A: Used [REDACTED] and [REDACTED]");
  });

  test("falls back to the request text for the title", () => {
    expect(renderPullRequest(content({ summary: "  \n" })).title).toBe("T-7F3K2A: fix the login redirect");
  });
});

describe("formatting", () => {
  test("amounts and durations", () => {
    expect(formatUsd(0)).toBe("0.00");
    expect(formatUsd(0.0042)).toBe("0.0042");
    expect(formatUsd(12)).toBe("12.00");
    expect(formatDuration(999)).toBe("999 ms");
    expect(formatDuration(1500)).toBe("1.5 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
  });
});
