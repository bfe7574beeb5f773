// Mention, slash and reaction grammar (CONTRACT §5): every form users type, and helpful refusals.
import { describe, expect, test } from "@jest/globals";
import {
  findGitHubRepo,
  isValidBranchName,
  isValidRepoName,
  normalizeRepoInput,
  parseMentionText,
  parseReaction,
  parseSlashText,
  slackToPlainText,
  type Intent,
} from "../../../src/core/intents.js";

const BOT = "U0BATON";

function expectInvalid(intent: Intent, mentions: RegExp): string {
  expect(intent.kind).toBe("invalid");
  const message = intent.kind === "invalid" ? intent.message : "";
  expect(message).toMatch(mentions);
  return message;
}

describe("parseMentionText", () => {
  test("a plain request: verb fix, whole text", () => {
    expect(parseMentionText(`<@${BOT}> the login page loops forever`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "the login page loops forever",
    });
  });

  test("the mention may sit anywhere; only the first is removed", () => {
    expect(parseMentionText(`hey <@${BOT}> can you fix this? cc <@${BOT}>`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "hey can you fix this? cc @U0BATON",
    });
    expect(parseMentionText(`<@${BOT}|baton> fix it`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "it",
    });
  });

  test("leading fix/plan is consumed; plan implies mode plan", () => {
    expect(parseMentionText(`<@${BOT}> Fix: the flaky test`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "the flaky test",
    });
    expect(parseMentionText(`<@${BOT}> plan the migration to pnpm`, BOT)).toEqual({
      kind: "request",
      verb: "plan",
      text: "the migration to pnpm",
      mode: "plan",
    });
    expect(parseMentionText(`<@${BOT}> plan the migration mode=auto`, BOT)).toEqual({
      kind: "request",
      verb: "plan",
      text: "the migration",
      mode: "auto",
    });
    // "fixes" is not the verb.
    expect(parseMentionText(`<@${BOT}> fixes are needed`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "fixes are needed",
    });
  });

  test("options anywhere are parsed and removed from the text", () => {
    expect(
      parseMentionText(
        `<@${BOT}> fix repo=acme/web the header attempts=3 overlap branch=release/1.2 mode=AUTO`,
        BOT,
      ),
    ).toEqual({
      kind: "request",
      verb: "fix",
      text: "the header overlap",
      repo: "acme/web",
      attempts: 3,
      branch: "release/1.2",
      mode: "auto",
    });
  });

  test("repo= accepts Slack links and github.com URLs", () => {
    const linked = parseMentionText(
      `<@${BOT}> fix it repo=<https://github.com/acme/web|github.com/acme/web>`,
      BOT,
    );
    expect(linked).toEqual({ kind: "request", verb: "fix", text: "it", repo: "acme/web" });
    expect(parseMentionText(`<@${BOT}> repo=github.com/acme/api it`, BOT)).toMatchObject({
      repo: "acme/api",
      text: "it",
    });
    expect(parseMentionText(`<@${BOT}> repo=<https://github.com/acme/api.git> it`, BOT)).toMatchObject({
      repo: "acme/api",
    });
    expect(parseMentionText(`<@${BOT}> repo="acme/api" it`, BOT)).toMatchObject({ repo: "acme/api" });
  });

  test("other key=value words stay in the request text", () => {
    expect(parseMentionText(`<@${BOT}> set NODE_ENV=production and x=1 in the Dockerfile`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "set NODE_ENV=production and x=1 in the Dockerfile",
    });
  });

  test("key=value inside code is request text, not an option", () => {
    const text = `<@${BOT}> fix the crash:\n\`\`\`\nmode=production attempts=9\n\`\`\`\nand \`branch=..\` too repo=acme/web`;
    expect(parseMentionText(text, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "the crash:\n```\nmode=production attempts=9\n```\nand `branch=..` too",
      repo: "acme/web",
    });
    expect(parseMentionText(`<@${BOT}> constructor=1 toString=2 __proto__=3`, BOT)).toMatchObject({
      kind: "request",
    });
  });

  test("multi-line requests keep their lines", () => {
    const intent = parseMentionText(
      `<@${BOT}> fix this:\n\`\`\`\nTypeError: x is undefined\n\`\`\`\nrepo=acme/web`,
      BOT,
    );
    expect(intent).toEqual({
      kind: "request",
      verb: "fix",
      text: "this:\n```\nTypeError: x is undefined\n```",
      repo: "acme/web",
    });
  });

  test("invalid option values say what is wrong and what to type", () => {
    expectInvalid(parseMentionText(`<@${BOT}> fix it attempts=5`, BOT), /attempts=5.*1 to 4.*attempts=2/);
    expectInvalid(parseMentionText(`<@${BOT}> fix it attempts=0`, BOT), /1 to 4/);
    expectInvalid(parseMentionText(`<@${BOT}> fix it attempts=two`, BOT), /whole number/);
    expectInvalid(parseMentionText(`<@${BOT}> fix it mode=yolo`, BOT), /mode=yolo.*mode=plan.*mode=auto/);
    expectInvalid(parseMentionText(`<@${BOT}> fix it repo=not-a-repo`, BOT), /repo=not-a-repo.*owner\/name/);
    expectInvalid(
      parseMentionText(`<@${BOT}> fix it repo=https://gitlab.com/a/b`, BOT),
      /not a GitHub repository/,
    );
    expectInvalid(
      parseMentionText(`<@${BOT}> fix it branch=feat..x`, BOT),
      /branch=feat\.\.x.*git branch name/,
    );
    expectInvalid(parseMentionText(`<@${BOT}> fix it branch=-rf`, BOT), /branch/);
    expectInvalid(parseMentionText(`<@${BOT}> fix it attempt=2`, BOT), /attempt=.*did you mean `attempts=`/);
    expectInvalid(parseMentionText(`<@${BOT}> fix it repository=acme/web`, BOT), /did you mean `repo=`/);
    expectInvalid(parseMentionText(`<@${BOT}> fix it repo=acme/a repo=acme/b`, BOT), /given twice/);
  });

  test("refusals quote the input inertly", () => {
    for (const text of [
      `fix it attempts=<!channel>`,
      "fix it mode=<@U1>x",
      "cancel T-<!here>",
      `fix it branch=${"x".repeat(500)}..`,
    ]) {
      const message = expectInvalid(parseMentionText(`<@${BOT}> ${text}`, BOT), /./);
      expect(message).not.toContain("<");
      expect(message).not.toMatch(/@(channel|here)\b/);
      expect(message.length).toBeLessThan(400);
    }
  });

  test("control words only as the whole text", () => {
    expect(parseMentionText(`<@${BOT}> status`, BOT)).toEqual({ kind: "status" });
    expect(parseMentionText(`<@${BOT}>   Cancel  `, BOT)).toEqual({ kind: "cancel" });
    expect(parseMentionText(`<@${BOT}> retry!`, BOT)).toEqual({ kind: "retry" });
    expect(parseMentionText(`<@${BOT}> help`, BOT)).toEqual({ kind: "help" });
    expect(parseMentionText(`<@${BOT}> help me with the cache invalidation`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "help me with the cache invalidation",
    });
    expect(parseMentionText(`<@${BOT}> cancel the subscription flow bug`, BOT)).toMatchObject({
      kind: "request",
    });
  });

  test("task ids are case-insensitive and normalised; malformed ids are refused", () => {
    expect(parseMentionText(`<@${BOT}> cancel t-7f3k2a`, BOT)).toEqual({
      kind: "cancel",
      taskId: "T-7F3K2A",
    });
    expect(parseMentionText(`<@${BOT}> status T-ABC123`, BOT)).toEqual({
      kind: "status",
      taskId: "T-ABC123",
    });
    expectInvalid(parseMentionText(`<@${BOT}> retry T-ABC`, BOT), /not a task id.*T-7F3K2A/);
  });

  test("an empty mention (in a thread) is a request with empty text", () => {
    expect(parseMentionText(`<@${BOT}>`, BOT)).toEqual({ kind: "request", verb: "fix", text: "" });
    expect(parseMentionText(`<@${BOT}> repo=acme/web`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "",
      repo: "acme/web",
    });
  });

  test("config is a slash command; other sentences starting with config are requests", () => {
    expectInvalid(parseMentionText(`<@${BOT}> config repo acme/web`, BOT), /\/baton config repo/);
    expect(parseMentionText(`<@${BOT}> config the eslint rules`, BOT)).toMatchObject({
      kind: "request",
      text: "config the eslint rules",
    });
  });

  test("request text is plain text: entities decoded, mentions readable", () => {
    expect(parseMentionText(`<@${BOT}> a &lt; b &amp;&amp; <@U1|bob> says <!here> broke`, BOT)).toEqual({
      kind: "request",
      verb: "fix",
      text: "a < b && @bob says @here broke",
    });
  });
});

describe("parseSlashText", () => {
  test("empty is help; control words", () => {
    expect(parseSlashText("")).toEqual({ kind: "help" });
    expect(parseSlashText("  ")).toEqual({ kind: "help" });
    expect(parseSlashText("help")).toEqual({ kind: "help" });
    expect(parseSlashText("list")).toEqual({ kind: "list" });
    expect(parseSlashText("budget")).toEqual({ kind: "budget" });
    expect(parseSlashText("status")).toEqual({ kind: "status" });
    expect(parseSlashText("status t-abc123")).toEqual({ kind: "status", taskId: "T-ABC123" });
    expect(parseSlashText("cancel T-ABC123")).toEqual({ kind: "cancel", taskId: "T-ABC123" });
    expect(parseSlashText("retry T-ABC123")).toEqual({ kind: "retry", taskId: "T-ABC123" });
  });

  test("requests need text", () => {
    expect(parseSlashText("fix the build repo=acme/web")).toEqual({
      kind: "request",
      verb: "fix",
      text: "the build",
      repo: "acme/web",
    });
    expectInvalid(parseSlashText("fix"), /Say what to do/);
    expectInvalid(parseSlashText("repo=acme/web attempts=2"), /Say what to do/);
  });

  test("config repo", () => {
    expect(parseSlashText("config repo acme/web")).toEqual({ kind: "config_repo", repo: "acme/web" });
    expect(parseSlashText("config repo <https://github.com/acme/web|acme web repo>")).toEqual({
      kind: "config_repo",
      repo: "acme/web",
    });
    expectInvalid(parseSlashText("config repo nope"), /not a repository.*\/baton config repo owner\/name/);
    expectInvalid(parseSlashText("config"), /Usage: `\/baton config repo owner\/name`/);
  });
});

describe("parseReaction", () => {
  test("every reaction of CONTRACT §5", () => {
    expect(parseReaction("hammer_and_wrench")).toBe("fix");
    expect(parseReaction("white_check_mark")).toBe("approve");
    expect(parseReaction("x")).toBe("reject");
    expect(parseReaction("octagonal_sign")).toBe("cancel");
    expect(parseReaction("repeat")).toBe("retry");
    expect(parseReaction("one")).toEqual({ choose: 1 });
    expect(parseReaction("two")).toEqual({ choose: 2 });
    expect(parseReaction("three")).toEqual({ choose: 3 });
    expect(parseReaction("four")).toEqual({ choose: 4 });
  });

  test("skin tones and colons; unknown names", () => {
    expect(parseReaction("white_check_mark::skin-tone-2")).toBe("approve");
    expect(parseReaction(":x:")).toBe("reject");
    expect(parseReaction("five")).toBeUndefined();
    expect(parseReaction("thumbsup")).toBeUndefined();
    expect(parseReaction("toString")).toBeUndefined();
    expect(parseReaction("__proto__")).toBeUndefined();
  });
});

describe("slackToPlainText", () => {
  test("the documented conversions", () => {
    expect(slackToPlainText("<@U1|bob> and <@U2>")).toBe("@bob and @U2");
    expect(slackToPlainText("in <#C1|general> and <#C2>")).toBe("in #general and #C2");
    expect(slackToPlainText("see <https://x.dev/a?b=1&amp;c=2|the docs>")).toBe(
      "see the docs (https://x.dev/a?b=1&c=2)",
    );
    expect(slackToPlainText("<https://x.dev>")).toBe("https://x.dev");
    expect(slackToPlainText("<http://github.com/a/b|github.com/a/b>")).toBe("github.com/a/b");
    expect(slackToPlainText("<!here> <!channel> <!everyone>")).toBe("@here @channel @everyone");
    expect(slackToPlainText("<!subteam^S123|@oncall> ping")).toBe("@oncall ping");
    expect(slackToPlainText("a &lt;b&gt; &amp;lt;")).toBe("a <b> &lt;");
  });
});

describe("findGitHubRepo", () => {
  test("first repository URL across texts, linked or not", () => {
    expect(
      findGitHubRepo([
        "nothing here",
        "see <https://github.com/acme/web/issues/12|#12>",
        "github.com/other/x",
      ]),
    ).toBe("acme/web");
    expect(findGitHubRepo(["clone https://github.com/acme/api.git please"])).toBe("acme/api");
    expect(findGitHubRepo(["git@github.com:acme/cli.git"])).toBe("acme/cli");
    expect(findGitHubRepo(["it is at github.com/acme/web."])).toBe("acme/web");
    expect(findGitHubRepo(["https://github.com/orgs/acme/people then github.com/acme/site/pull/3"])).toBe(
      "acme/site",
    );
    expect(findGitHubRepo(["notgithub.com/a/b", "gitlab.com/a/b"])).toBeUndefined();
    expect(findGitHubRepo([])).toBeUndefined();
  });
});

describe("names", () => {
  test("isValidRepoName", () => {
    for (const ok of ["acme/web", "a/b", "Acme-Corp/web.site_v2", "a1/.github"])
      expect(isValidRepoName(ok)).toBe(true);
    for (const bad of [
      "acme",
      "acme/",
      "/web",
      "-acme/web",
      "acme-/web",
      "ac--me/web",
      "acme/web/x",
      "acme/..",
      "acme/.",
      "acme/web.git",
      "acme/we b",
      "a".repeat(40) + "/x",
    ]) {
      expect(isValidRepoName(bad)).toBe(false);
    }
  });

  test("normalizeRepoInput", () => {
    expect(normalizeRepoInput("https://github.com/acme/web/tree/main/src")).toBe("acme/web");
    expect(normalizeRepoInput("https://github.acme.corp/acme/web")).toBe("acme/web");
    expect(normalizeRepoInput("https://github.com/settings/tokens")).toBeUndefined();
    expect(normalizeRepoInput("acme/web.")).toBe("acme/web");
    expect(normalizeRepoInput("acme/web.git")).toBe("acme/web");
    expect(normalizeRepoInput("github.com/acme")).toBeUndefined();
  });

  test("isValidBranchName follows git's ref rules", () => {
    for (const ok of ["main", "release/1.2", "feat/x-y_z", "v1.0.0", "a@b"])
      expect(isValidBranchName(ok)).toBe(true);
    for (const bad of [
      "",
      "-x",
      "/x",
      "x/",
      "x.",
      "a..b",
      "a//b",
      "a@{1}",
      "@",
      "a b",
      "a~1",
      "a^",
      "a:b",
      "a?",
      "a*",
      "a[b",
      "a\\b",
      ".hidden",
      "x/.y",
      "x.lock",
      "a/b.lock/c",
      "a\u0001b",
      "a<b",
    ]) {
      expect(isValidBranchName(bad)).toBe(false);
    }
  });
});
