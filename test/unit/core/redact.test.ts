// Secrets never leave: token shapes, private keys, credential values, configured literal secrets in
// every spelling, deep objects; and it stays fast on hostile megabyte inputs.
import { describe, expect, test } from "@jest/globals";
import { createRedactor, redactDeep, REDACTED } from "../../../src/core/redact.js";

const redact = createRedactor([]);

// Fake credentials assembled at run time so no scanner mistakes this file for a leak.
const body36 = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";
const fake = {
  slackBot: ["xoxb", "123456789012", "1234567890123", "AbCdEfGhIjKlMnOpQrStUvWx"].join("-"),
  slackUser: ["xoxp", "1234", "5678", "90ab", "cdef0123456789"].join("-"),
  slackApp: ["xapp", "1", "A0123", "4567", "abcdef0123456789"].join("-"),
  ghp: "ghp_" + body36,
  gho: "gho_" + body36,
  ghu: "ghu_" + body36,
  ghs: "ghs_" + body36,
  ghr: "ghr_" + body36,
  ghsLong: "ghs_" + "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjM0NSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU",
  pat: "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab",
  openai: "sk-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
  openaiProj: "sk-proj-" + "Abc123_def456-GHI789jkl012MNO345pqr678",
  akia: "AKIA" + "ABCDEFGHIJKLMNOP",
  asia: "ASIA" + "QRSTUVWXYZ234567",
  awsSecret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
};

describe("token shapes", () => {
  test.each(Object.entries(fake).filter(([k]) => k !== "awsSecret"))(
    "%s is redacted in prose, JSON and URLs",
    (_name, token) => {
      for (const text of [
        `token ${token} here`,
        JSON.stringify({ t: token }),
        `line1\\n${token}`,
        `https://x/?k=${token}&a=1`,
      ]) {
        const out = redact(text);
        expect(out).toContain(REDACTED);
        expect(out).not.toContain(token);
        expect(out).not.toContain(token.slice(4, 20));
      }
    },
  );

  test("ordinary words that resemble prefixes survive", () => {
    const text = "task-events-and-more-handlers risk-assessment-for-the-team AKIA short ghp_short sk-short";
    expect(redact(text)).toBe(text);
  });

  test("aws_secret_access_key values, env/ini/JSON, keep the key", () => {
    expect(redact(`aws_secret_access_key = ${fake.awsSecret}`)).toBe(`aws_secret_access_key = ${REDACTED}`);
    expect(redact(`AWS_SECRET_ACCESS_KEY=${fake.awsSecret}`)).toBe(`AWS_SECRET_ACCESS_KEY=${REDACTED}`);
    expect(redact(JSON.stringify({ aws_secret_access_key: fake.awsSecret }))).toBe(
      `{"aws_secret_access_key":"${REDACTED}"}`,
    );
    expect(redact(JSON.stringify(JSON.stringify({ SecretAccessKey: fake.awsSecret })))).not.toContain(
      fake.awsSecret,
    );
  });

  test("Authorization header values", () => {
    expect(redact("Authorization: Bearer abc.def.ghi")).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(redact("authorization: Basic dXNlcjpwYXNz")).toBe(`authorization: Basic ${REDACTED}`);
    expect(redact(`curl -H 'Authorization: token abcdef123456' https://api`)).toBe(
      `curl -H 'Authorization: token ${REDACTED}' https://api`,
    );
    expect(redact(JSON.stringify({ headers: { Authorization: "Bearer zzzz1234" } }))).not.toContain(
      "zzzz1234",
    );
    expect(redact("sent Bearer abcdefghijklmnop123 upstream")).toBe(`sent Bearer ${REDACTED} upstream`);
  });

  test("passwords in URLs", () => {
    expect(redact("git clone https://x-access-token:s3cr3tpassw0rd@github.com/a/b")).toBe(
      `git clone https://x-access-token:${REDACTED}@github.com/a/b`,
    );
  });
});

describe("PEM private keys", () => {
  const pem = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAx1",
    "abcDEF0123",
    "-----END RSA PRIVATE KEY-----",
  ].join("\n");

  test("whole block, real newlines and escaped \\n", () => {
    expect(redact(`before\n${pem}\nafter`)).toBe(`before\n${REDACTED}\nafter`);
    expect(redact(JSON.stringify({ key: pem }))).toBe(`{"key":"${REDACTED}"}`);
    const openssh = pem.replace(/RSA/g, "OPENSSH");
    expect(redact(`${openssh} mid ${pem}`)).toBe(`${REDACTED} mid ${REDACTED}`);
  });

  test("an unterminated block (a cut log) is redacted to the end", () => {
    const cut = pem.slice(0, 60);
    expect(redact(`log: ${cut}`)).toBe(`log: ${REDACTED}`);
  });
});

describe("literal secret values", () => {
  const secret = 'p@ss/w"rd\\x\n é€😀 +end';
  const r = createRedactor([secret, "short", "  padded-secret-value\n"]);

  test("raw, JSON-escaped and URL-encoded spellings", () => {
    const spellings = [
      secret,
      JSON.stringify(secret).slice(1, -1),
      JSON.stringify(secret).slice(1, -1).replace(/\//g, "\\/"),
      // Every character as \uXXXX, in lower and upper case hex.
      Array.from(secret, (c) =>
        Array.from(
          { length: c.length },
          (_, i) => "\\u" + c.charCodeAt(i).toString(16).padStart(4, "0"),
        ).join(""),
      ).join(""),
      Array.from(secret, (c) =>
        Array.from(
          { length: c.length },
          (_, i) => "\\u" + c.charCodeAt(i).toString(16).padStart(4, "0").toUpperCase(),
        ).join(""),
      ).join(""),
      encodeURIComponent(secret),
      encodeURIComponent(secret)
        .toLowerCase()
        .replace(/%([0-9a-f]{2})/g, "%$1"),
      encodeURIComponent(secret).replace(/%20/g, "+"),
    ];
    for (const spelling of spellings) {
      expect(r(`a=${spelling};b`)).toBe(`a=${REDACTED};b`);
    }
  });

  test("short values are ignored; surrounding whitespace does not hide a value", () => {
    expect(r("a short word")).toBe("a short word");
    expect(r("value padded-secret-value in a log")).toBe(`value ${REDACTED} in a log`);
  });

  test("regex metacharacters in secrets are literal", () => {
    const meta = createRedactor(["a.b*c+d?(e)[f]{g}|h^$"]);
    expect(meta("x a.b*c+d?(e)[f]{g}|h^$ y")).toBe(`x ${REDACTED} y`);
    expect(meta("x aXb*c+d?(e)[f]{g}|h^$ y")).toBe("x aXb*c+d?(e)[f]{g}|h^$ y");
  });
});

describe("redactDeep", () => {
  test("strings anywhere, credential-named keys, errors, cycles", () => {
    const r = createRedactor(["supersecretvalue"]);
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic["self"] = cyclic;
    const error = new Error("failed with supersecretvalue");
    const input = {
      list: ["ok", `x ${fake.ghp}`],
      nested: { password: "hunter2", token: "anything", tokens: 5, note: "supersecretvalue!" },
      headers: { Authorization: "Bearer abc" },
      when: new Date(0),
      error,
      cyclic,
    };
    const out = redactDeep(input, r) as typeof input & {
      error: Record<string, unknown>;
      cyclic: Record<string, unknown>;
    };
    expect(out.list).toEqual(["ok", `x ${REDACTED}`]);
    expect(out.nested).toEqual({ password: REDACTED, token: REDACTED, tokens: 5, note: `${REDACTED}!` });
    expect(out.headers).toEqual({ Authorization: REDACTED });
    expect(out.when).toBe(input.when);
    expect(out.error["message"]).toBe(`failed with ${REDACTED}`);
    expect(String(out.error["stack"])).not.toContain("supersecretvalue");
    expect(out.cyclic["self"]).toBe("[Circular]");
    // The input is untouched.
    expect(input.nested.password).toBe("hunter2");
  });
});

describe("performance on hostile input", () => {
  const r = createRedactor(["literal-secret-1", 'another "secret"/value', "x".repeat(2000)]);
  const MB = 1024 * 1024;

  const inputs: Array<[string, string]> = [
    ["random-ish text", Array.from({ length: MB / 16 }, (_, i) => `word${i % 97} `.padEnd(16, "z")).join("")],
    ["repeated BEGIN without END", "-----BEGIN RSA PRIVATE KEY-----\n".repeat(MB / 32)],
    ["near-miss tokens", "ghp_short sk-abc xoxb- AKIA Authorization: Bearer ".repeat(MB / 48)],
    ["long token-like run", "a".repeat(MB)],
    ["a configured secret's characters over and over", "x".repeat(MB)],
    ["backslashes and percents", "\\u00%2\\".repeat(MB / 7)],
    ["url-ish", "https://user:".repeat(MB / 13)],
    ["many bearer words", "bearer ".repeat(MB / 7)],
  ];

  test.each(inputs)("%s (1 MB) in well under a second", (_name, input) => {
    const start = performance.now();
    const out = r(input);
    const ms = performance.now() - start;
    expect(typeof out).toBe("string");
    expect(ms).toBeLessThan(1500);
  });
});
