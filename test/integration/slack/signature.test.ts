// Slack v0 request signatures: what the app accepts and what it refuses.
import { describe, expect, test } from "@jest/globals";
import { computeSlackSignature, signSlackRequest, verifySlackSignature } from "../../support/slack-signer.js";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const NOW = 1_700_000_000;

describe("Slack request signatures", () => {
  test("matches Slack's documented example", () => {
    // https://api.slack.com/authentication/verifying-requests-from-slack
    const body =
      "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    expect(computeSlackSignature(SECRET, 1531420618, body)).toBe(
      "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    );
  });

  test("accepts a fresh signature and refuses tampering, other secrets and missing headers", () => {
    const body = JSON.stringify({ type: "event_callback", event: { type: "app_mention", text: "hi" } });
    const headers = signSlackRequest(SECRET, body, NOW);
    expect(verifySlackSignature(SECRET, headers, body, NOW)).toEqual({ ok: true });
    expect(verifySlackSignature(SECRET, headers, Buffer.from(body), NOW + 10)).toEqual({ ok: true });
    expect(verifySlackSignature(SECRET, headers, body.replace("hi", "ho"), NOW)).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(verifySlackSignature("another-secret", headers, body, NOW)).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(verifySlackSignature(SECRET, { "x-slack-request-timestamp": String(NOW) }, body, NOW)).toEqual({
      ok: false,
      reason: "missing_headers",
    });
    expect(verifySlackSignature(SECRET, { ...headers, "x-slack-signature": "v0=00" }, body, NOW)).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(
      verifySlackSignature(SECRET, { ...headers, "x-slack-request-timestamp": "12abc" }, body, NOW),
    ).toEqual({
      ok: false,
      reason: "bad_timestamp",
    });
  });

  test("refuses timestamps more than five minutes away, past or future", () => {
    const body = "payload=%7B%7D";
    for (const offset of [-301, 301, -86_400, 86_400]) {
      const headers = signSlackRequest(SECRET, body, NOW + offset);
      expect(verifySlackSignature(SECRET, headers, body, NOW)).toEqual({
        ok: false,
        reason: "stale_timestamp",
      });
    }
    for (const offset of [-300, 0, 300]) {
      const headers = signSlackRequest(SECRET, body, NOW + offset);
      expect(verifySlackSignature(SECRET, headers, body, NOW)).toEqual({ ok: true });
    }
  });

  test("reads header names in any case and from a fetch Headers object", () => {
    const body = "{}";
    const signed = signSlackRequest(SECRET, body, NOW);
    const upper = {
      "X-Slack-Signature": signed["x-slack-signature"],
      "X-Slack-Request-Timestamp": signed["x-slack-request-timestamp"],
    };
    expect(verifySlackSignature(SECRET, upper, body, NOW)).toEqual({ ok: true });
    expect(verifySlackSignature(SECRET, new Headers(upper), body, NOW)).toEqual({ ok: true });
  });
});
