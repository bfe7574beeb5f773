// B8: the whole product (the real `baton bot` process, test/e2e/harness.ts) with zero-latency fakes —
// Slack, model, GitHub and Kubernetes emulators, a scripted model that patches and finishes at once,
// channel mode=auto — timed from the mention to the first reply (👀 or a thread message), to the Job
// created, and to the PR link in the thread; vs the sum of the primitives measured alone in the same
// run: one chat.postMessage round trip, one createNamespacedJob, the agent's own process lifetime
// (container start → exit, from the emulated pod's status) and one publish (push a commit + open a PR).
import { BatchV1Api } from "@kubernetes/client-node";
import {
  BOT_USER,
  CHANNEL,
  FIX_PATCH,
  GITHUB_TOKEN,
  REPO,
  startE2E,
  type Brain,
  type E2E,
} from "../test/e2e/harness.js";
import {
  percentile,
  round,
  waitUntil,
  type BenchContext,
  type BenchOutcome,
  type Invariant,
  type Row,
} from "./lib/report.js";

const REPEATS = 3;

/** Classify "no"; implement: apply the fix, then finish (no shell step: nothing but Baton's own work). */
const quickBrain: Brain = (turn) => {
  if (turn.phase === "classify") return { content: "no" };
  if (turn.phase === "plan")
    return {
      toolCalls: [{ name: "submit_plan", arguments: { summary: "Make add() add.", steps: ["Fix add"] } }],
    };
  if (turn.step === 0) return { toolCalls: [{ name: "apply_patch", arguments: { patch: FIX_PATCH } }] };
  return { toolCalls: [{ name: "finish", arguments: { summary: "Fix add() to add" } }] };
};

interface Stages {
  firstReplyMs: number;
  jobCreatedMs: number;
  prLinkMs: number;
  /** The agent's container lifetime in this run (emulated pod status, ms resolution). */
  agentMs: number;
}

const poll = <T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 60_000) =>
  waitUntil(what, fn, timeoutMs, 2);

async function oneTask(env: E2E, i: number): Promise<Stages> {
  const kube = env.kubernetes!;
  const jobsBefore = new Set(kube.jobs().map((j) => j.metadata.name));
  const pullsBefore = env.github.pulls(REPO).length;
  const t0 = performance.now();
  const root = await env.say(`<@${BOT_USER}> fix add() in math.js (bench ${i})`);
  const firstReply = await poll("the first reply", () =>
    env.slack.reactions(CHANNEL, root).some((r) => r.users.includes(BOT_USER)) ||
    env.botMessages(root).length > 0
      ? performance.now()
      : undefined,
  );
  const jobCreated = await poll("the Job", () =>
    kube.jobs().some((j) => !jobsBefore.has(j.metadata.name)) ? performance.now() : undefined,
  );
  const pull = await poll("the pull request", () => env.github.pulls(REPO)[pullsBefore]);
  const prUrl = new RegExp(`/${REPO}/pull/${pull.number}\\b`);
  const prLink = await poll("the PR link in the thread", () =>
    env.botMessages(root).some((m) => prUrl.test(m.text) || prUrl.test(JSON.stringify(m.blocks ?? [])))
      ? performance.now()
      : undefined,
  );
  const job = kube.jobs().find((j) => !jobsBefore.has(j.metadata.name))!;
  type Terminated = { startedAt?: string; finishedAt?: string };
  const terminated = await poll("the agent's container to have ended", () => {
    const pod = kube
      .pods()
      .find(
        (p) =>
          p.metadata.labels?.["job-name"] === job.metadata.name ||
          p.metadata.ownerReferences?.some((o) => o.uid === job.metadata.uid),
      );
    const statuses = pod?.status?.containerStatuses as { state?: { terminated?: Terminated } }[] | undefined;
    return statuses?.[0]?.state?.terminated;
  });
  const agentMs =
    terminated.startedAt && terminated.finishedAt
      ? Date.parse(terminated.finishedAt) - Date.parse(terminated.startedAt)
      : Number.NaN;
  return {
    firstReplyMs: firstReply - t0,
    jobCreatedMs: jobCreated - t0,
    prLinkMs: prLink - t0,
    agentMs,
  };
}

/** The primitives alone, against the same emulators. */
async function primitives(
  env: E2E,
  i: number,
): Promise<{ slackMs: number; jobMs: number; publishMs: number }> {
  const kube = env.kubernetes!;
  // A channel of its own per call: the emulator enforces chat.postMessage's 1/s per channel.
  const channel = `C0BENCHP${i}`;
  env.slack.channel(channel, { name: `bench-primitive-${i}` });
  let t = performance.now();
  const res = await fetch(`${env.slack.apiUrl.replace(/\/$/, "")}/chat.postMessage`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.slack.botToken}`, "content-type": "application/json" },
    body: JSON.stringify({ channel, text: `bench primitive ${i}` }),
  });
  const answer = (await res.json()) as { ok?: boolean; error?: string };
  if (!answer.ok) throw new Error(`chat.postMessage failed: ${answer.error ?? res.status}`);
  const slackMs = performance.now() - t;

  const batch = kube.kubeconfig().makeApiClient(BatchV1Api);
  t = performance.now();
  await batch.createNamespacedJob({
    namespace: "bench-primitives",
    body: {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: `primitive-${i}` },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: "Never",
            containers: [{ name: "c", image: "bench", command: ["true"] }],
          },
        },
      },
    },
  });
  const jobMs = performance.now() - t;

  // Publish alone: a commit on a new branch, then the pull request (what the publisher does, minus Baton).
  t = performance.now();
  const branch = `bench/primitive-${i}`;
  await env.github.pushCommit(REPO, branch, { "math.js": "exports.add = (a, b) => a + b;\n" }, "main");
  const pr = await fetch(`${env.github.apiUrl.replace(/\/$/, "")}/repos/${REPO}/pulls`, {
    method: "POST",
    headers: { authorization: `token ${GITHUB_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ title: `primitive ${i}`, head: branch, base: "main", body: "bench" }),
  });
  if (pr.status !== 201) throw new Error(`creating the primitive pull request answered ${pr.status}`);
  await pr.text();
  const publishMs = performance.now() - t;
  return { slackMs, jobMs, publishMs };
}

const median = (values: number[]) => percentile(values, 50);

export async function benchB8(ctx: BenchContext): Promise<BenchOutcome> {
  ctx.log("B8 starting the product (real `baton bot`, emulators, mode=auto, Kubernetes executor)");
  const env = await startE2E({ executor: "kubernetes", channelMode: "auto", brain: quickBrain });
  try {
    const stages: Stages[] = [];
    for (let i = 0; i < REPEATS; i++) {
      stages.push(await oneTask(env, i));
      ctx.log(
        `B8 task ${i + 1}/${REPEATS}: ${JSON.stringify(stages.at(-1), (_k, v: unknown) => (typeof v === "number" ? round(v, 1) : v))}`,
      );
    }
    // Primitives after the tasks so the PR numbering of the tasks above stays simple.
    const prims: { slackMs: number; jobMs: number; publishMs: number }[] = [];
    for (let i = 0; i < REPEATS; i++) prims.push(await primitives(env, i));

    const slack = median(prims.map((p) => p.slackMs));
    const job = median(prims.map((p) => p.jobMs));
    const publish = median(prims.map((p) => p.publishMs));
    const agent = median(stages.map((s) => s.agentMs));
    const first = median(stages.map((s) => s.firstReplyMs));
    const created = median(stages.map((s) => s.jobCreatedMs));
    const prLink = median(stages.map((s) => s.prLinkMs));
    const sums = {
      first: slack,
      created: slack + job,
      prLink: slack + job + agent + publish,
    };
    const within = (value: number, sum: number) => value <= 1.5 * sum + 100;
    const rows: Row[] = [
      {
        id: "B8",
        figure: "mention → first reply (median of 3)",
        value: round(first, 1),
        baseline: round(sums.first, 1),
        unit: "ms",
        target: "≤ 1.5× Slack post + 100 ms",
        pass: within(first, sums.first),
      },
      {
        id: "B8",
        figure: "mention → Job created (median of 3)",
        value: round(created, 1),
        baseline: round(sums.created, 1),
        unit: "ms",
        target: "≤ 1.5× (post + Job create) + 100 ms",
        pass: within(created, sums.created),
      },
      {
        id: "B8",
        figure: "mention → PR link (median of 3)",
        value: round(prLink, 0),
        baseline: round(sums.prLink, 0),
        unit: "ms",
        target: "≤ 1.5× sum of primitives + 100 ms",
        pass: within(prLink, sums.prLink),
      },
    ];
    const invariants: Invariant[] = [
      {
        id: "B8",
        name: "one pull request per task, agent lifetime measured",
        ok: env.github.pulls(REPO).length === 2 * REPEATS && stages.every((s) => Number.isFinite(s.agentMs)),
        detail: `pulls ${env.github.pulls(REPO).length} (want ${REPEATS} tasks + ${REPEATS} primitives); agent ms ${stages.map((s) => round(s.agentMs, 0)).join(", ")}`,
      },
    ];
    return {
      rows,
      invariants,
      details: {
        stages,
        primitives: prims,
        medians: { slack, job, agent, publish, first, created, prLink },
      },
    };
  } finally {
    await env.close();
  }
}
