// The one HTTP server on its own: mounted routes, errors without stack traces, readiness timeouts,
// the Slack path without a handler.
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { createHttpServer, type HttpServer } from "../../../src/adapters/http/server.js";
import { createMetrics } from "../../../src/adapters/metrics/metrics.js";
import { silentLogger } from "../../../src/shared/logger.js";

let server: HttpServer;
let base = "";
const seen: string[] = [];

beforeAll(async () => {
  server = createHttpServer({
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger(),
    readinessTimeoutMs: 200,
    readiness: [
      { name: "fast", check: async () => true },
      { name: "hangs", check: () => new Promise<boolean>(() => undefined) },
    ],
    routes: [
      {
        prefix: "/runner/v1",
        async handle(req, res) {
          seen.push(`${req.method} ${req.url}`);
          if (req.url?.startsWith("/runner/v1/boom")) throw new Error("secret detail at /srv/app.js:12:3");
          res.writeHead(200, { "content-type": "text/plain" });
          res.end("runner");
        },
      },
    ],
  });
  const { port } = await server.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await server.close();
});

test("mounted routes get their prefix and nothing else", async () => {
  const ok = await fetch(`${base}/runner/v1/run?x=1`);
  expect(ok.status).toBe(200);
  expect(await ok.text()).toBe("runner");
  expect((await fetch(`${base}/runner/v10/run`)).status).toBe(404);
  expect((await fetch(`${base}/runner`)).status).toBe(404);
  expect(seen).toEqual(["GET /runner/v1/run?x=1"]);
});

test("a route that throws answers 500 without the error's text", async () => {
  const res = await fetch(`${base}/runner/v1/boom`);
  expect(res.status).toBe(500);
  const body = await res.text();
  expect(body).toBe("internal error\n");
});

test("readiness fails when a check does not answer in time", async () => {
  const started = Date.now();
  const res = await fetch(`${base}/readyz`);
  expect(res.status).toBe(503);
  expect(await res.json()).toEqual({ ok: false, checks: { fast: true, hangs: false } });
  expect(Date.now() - started).toBeLessThan(2000);
});

test("without a Slack handler /slack/events is 404; a wrong method is 405 with one", async () => {
  expect((await fetch(`${base}/slack/events`, { method: "POST", body: "{}" })).status).toBe(404);
  const other = createHttpServer({
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger(),
    slackHandler: async () => ({ status: 200, body: "" }),
  });
  const { port } = await other.listen(0, "127.0.0.1");
  try {
    expect((await fetch(`http://127.0.0.1:${port}/slack/events`)).status).toBe(405);
    expect(
      (await fetch(`http://127.0.0.1:${port}/slack/events`, { method: "POST", body: "{}" })).status,
    ).toBe(200);
  } finally {
    await other.close();
  }
});
