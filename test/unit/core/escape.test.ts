// Slack control sequences in untrusted text are shown, never acted on.
import { describe, expect, test } from "@jest/globals";
import { breakBacktickRuns, codeBlock, escapeSlackText, inlineCode } from "../../../src/core/escape.js";

const ZWJ = "\u200D";

describe("escapeSlackText", () => {
  test("entities for & < > make every <…> sequence inert", () => {
    const input =
      "<!channel> <!here> <!everyone> <@U123> <#C123|general> <https://evil.example|click me> a & b";
    const out = escapeSlackText(input);
    expect(out).toBe(
      "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;@U123&gt; &lt;#C123|general&gt; &lt;https://evil.example|click me&gt; a &amp; b",
    );
    expect(out).not.toMatch(/[<>]/);
  });

  test("already-escaped text is escaped again (shown as typed)", () => {
    expect(escapeSlackText("&lt;!channel&gt;")).toBe("&amp;lt;!channel&amp;gt;");
  });

  test("bare @channel / @here / @everyone are broken with a zero-width joiner", () => {
    expect(escapeSlackText("ping @channel and @HERE, @everyone!")).toBe(
      `ping @${ZWJ}channel and @${ZWJ}HERE, @${ZWJ}everyone!`,
    );
    // Words that merely start with those letters are left alone.
    expect(escapeSlackText("@heretic @channels")).toBe("@heretic @channels");
    expect(escapeSlackText("plain text")).toBe("plain text");
  });
});

describe("codeBlock", () => {
  test("fences escaped text; backtick runs inside cannot close it", () => {
    const out = codeBlock("a\n```\n<!channel>\n````x");
    expect(out.startsWith("```\n")).toBe(true);
    expect(out.endsWith("\n```")).toBe(true);
    const inner = out.slice(4, -4);
    expect(inner).not.toContain("``");
    expect(inner).toContain("&lt;!channel&gt;");
    expect(inner.replace(/\u200B/g, "")).toBe("a\n```\n&lt;!channel&gt;\n````x");
  });

  test("empty text still makes a valid block", () => {
    expect(codeBlock("")).toBe("```\n \n```");
  });
});

describe("inlineCode", () => {
  test("one line, no backticks, escaped", () => {
    const out = inlineCode("rm `x`\n<@U1>");
    expect(out).toBe("`rm \u02CBx\u02CB &lt;@U1&gt;`");
    expect(out.slice(1, -1)).not.toContain("`");
    expect(inlineCode("")).toBe("` `");
  });
});

describe("breakBacktickRuns", () => {
  test("no two backticks stay adjacent", () => {
    expect(breakBacktickRuns("``````")).not.toMatch(/``/);
    expect(breakBacktickRuns("`a`")).toBe("`a`");
  });
});
