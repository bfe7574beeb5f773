// A stand-in for `baton agent` in the runs tests: it speaks the runner API like the real agent
// (spec, events, model gateway, bundle, result) and follows a script given as JSON in the request
// text: { holdMs, log, llm: [{ stream }], outcome, writeToken }. It retries calls while the bot
// answers 5xx or is unreachable (a Redis restart), as the real agent does.
import { appendFileSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";

const base = `${process.env.BATON_RUNNER_URL}/runner/v1`;
// Like the real agent: the token comes in a file (local executor) that is deleted once read.
const tokenFile = process.env.BATON_RUN_TOKEN_FILE;
const token = tokenFile ? readFileSync(tokenFile, "utf8").trim() : process.env.BATON_RUN_TOKEN;
if (tokenFile) rmSync(dirname(tokenFile), { recursive: true, force: true });
const auth = { authorization: `Bearer ${token}` };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(path, init = {}) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`${base}${path}`, { ...init, headers: { ...auth, ...(init.headers ?? {}) } });
      if (res.status < 500) return res;
    } catch {
      // bot unreachable: retry
    }
    if (Date.now() > deadline) throw new Error(`runner API unreachable for ${path}`);
    await sleep(200);
  }
}

const json = (body) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

const specRes = await call("/run");
if (specRes.status !== 200) {
  process.stderr.write(`spec refused: ${specRes.status}\n`);
  process.exit(3);
}
const spec = await specRes.json();
const script = JSON.parse(spec.request.text);
const log = (line) => {
  if (script.log) appendFileSync(script.log, `${line} ${spec.runId} ${Date.now()} ${process.pid}\n`);
};
log("start");
if (script.writeToken) appendFileSync(script.writeToken, `${spec.runId} ${token}\n`);
console.log(`fake agent ${spec.runId} phase=${spec.phase} env=${Object.keys(process.env).sort().join(",")}`);

let seq = 0;
const events = async (list) => {
  const res = await call("/events", json({ events: list.map((e) => ({ seq: seq++, ...e })) }));
  return res.json();
};
await events([
  { type: "run.started" },
  { type: "command.finished", argv: ["npm", "test"], exitCode: 0, durationMs: 12 },
]);

for (const step of script.llm ?? []) {
  const res = await call(
    "/llm/v1/chat/completions",
    json({
      model: "agent-chosen-model",
      stream: Boolean(step.stream),
      messages: [{ role: "user", content: "hi" }],
    }),
  );
  if (res.status === 429) {
    const body = await res.json();
    await events([{ type: "run.failed", code: body.error.code, message: body.error.message }]);
    log("end");
    process.exit(1);
  }
  await res.text();
}

const until = Date.now() + (script.holdMs ?? 0);
while (Date.now() < until) {
  const answer = await events([{ type: "plan.updated", steps: [{ step: "work", status: "in_progress" }] }]);
  if (answer.cancelled) {
    log("cancelled");
    process.exit(2);
  }
  await sleep(200);
}

const evidence = [{ argv: ["npm", "test"], exitCode: 0, durationMs: 12 }];
const result =
  spec.phase === "plan"
    ? { outcome: "plan", summary: "the plan", steps: ["step one", "step two"], evidence }
    : { outcome: "no_change", summary: "nothing to change", evidence };
const res = await call("/result", json(result));
log(`end-${res.status}`);
process.exit(res.status === 200 ? 0 : 4);
