// Slack request signing (v0): HMAC-SHA256 over `v0:<timestamp>:<raw body>` with the signing secret.
// Pure helpers shared by the app (verification) and the tests and emulator (signing).
import { createHmac, timingSafeEqual } from "node:crypto";

/** Slack refuses requests more than five minutes away from now, in either direction. */
export const SLACK_SIGNATURE_MAX_AGE_SECONDS = 300;

export const SLACK_SIGNATURE_HEADER = "x-slack-signature";
export const SLACK_TIMESTAMP_HEADER = "x-slack-request-timestamp";

/** `v0=<hex>` for a body sent at `timestampSeconds`. */
export function computeSlackSignature(
  secret: string,
  timestampSeconds: number | string,
  rawBody: string | Buffer,
): string {
  const hmac = createHmac("sha256", secret);
  hmac.update(`v0:${String(timestampSeconds)}:`);
  hmac.update(rawBody);
  return `v0=${hmac.digest("hex")}`;
}

export type SlackSignatureCheck =
  | { ok: true }
  | { ok: false; reason: "missing_headers" | "bad_timestamp" | "stale_timestamp" | "bad_signature" };

type HeaderBag = Record<string, string | string[] | undefined> | Headers;

function header(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const bag = headers as Record<string, string | string[] | undefined>;
  // Node lower-cases incoming header names; callers building their own bag may not.
  const key = Object.keys(bag).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : bag[key];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Checks `X-Slack-Signature` and `X-Slack-Request-Timestamp` against the raw body. Rejects a
 * timestamp more than five minutes in the past or the future (replays), compares in constant time.
 */
export function verifySlackSignature(
  secret: string,
  headers: HeaderBag,
  rawBody: string | Buffer,
  nowSeconds: number,
): SlackSignatureCheck {
  const signature = header(headers, SLACK_SIGNATURE_HEADER);
  const timestamp = header(headers, SLACK_TIMESTAMP_HEADER);
  if (signature === undefined || timestamp === undefined) return { ok: false, reason: "missing_headers" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "bad_timestamp" };
  if (Math.abs(nowSeconds - Number(timestamp)) > SLACK_SIGNATURE_MAX_AGE_SECONDS) {
    return { ok: false, reason: "stale_timestamp" };
  }
  const expected = Buffer.from(computeSlackSignature(secret, timestamp, rawBody), "utf8");
  const actual = Buffer.from(signature, "utf8");
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    return { ok: false, reason: "bad_signature" };
  }
  return { ok: true };
}
