// Requests and controls as people make them in Slack: mentions, `/baton`, reactions and buttons,
// through the emulator into the running app (HTTP mode), with a real Redis behind the task store.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { ACTION_IDS } from "../../../src/core/render.js";
import type { Task, TaskId } from "../../../src/core/task.js";
import { applyTaskEvent } from "../../../src/services/task-events.js";
import { eventually, startHarness, type Harness } from "./harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    policy: {
      access: {
        users: ["UALICE", "UBOB", "UCAROL", "UDAVE", "UERIN", "UFRANK"],
        approvers: ["UAPPROVER"],
        admins: ["UADMIN"],
      },
      channels: {
        C0001: { repo: "acme/web" },
        CAUTO: { repo: "acme/web", mode: "auto" },
        CBUDGET: { repo: "acme/web", budgetUsdPerDay: 5 },
      },
      repos: { "acme/web": {}, "acme/api": {} },
      limits: { perUser: 3 },
    },
  });
});

afterAll(async () => {
  await h?.close();
});

afterEach(async () => {
  await h.app.idle();
});

function botMessagesWith(channel: string, threadTs: string, needle: string) {
  return h.emulator
    .messages(channel, threadTs)
    .filter((m) => m.user === "UBATON" && JSON.stringify(m).includes(needle));
}

async function onlyTask(channel: string, threadTs: string): Promise<Task> {
  const tasks = (await h.tasksInChannel(channel)).filter((t) => t.threadTs === threadTs);
  expect(tasks).toHaveLength(1);
  return tasks[0] as Task;
}

/** Stands in for the run side: the plan run of `taskId` finished with a plan. */
async function planReady(taskId: TaskId): Promise<Task> {
  const task = await h.store.get(taskId);
  const run = task?.runs.find((r) => r.phase === "plan");
  if (!run) throw new Error("no plan run");
  await applyTaskEvent({ store: h.store, effects: h.effects }, taskId, {
    type: "run.plan_ready",
    at: new Date().toISOString(),
    runId: run.runId,
    summary: "Fix the redirect",
    steps: ["Find the redirect", "Fix it", "Add a test"],
  });
  const planned = await h.store.get(taskId);
  if (!planned) throw new Error("task vanished");
  return planned;
}

describe("mentions", () => {
  test("a mention in a thread gets 👀 within 3 s and exactly one status message carrying the task id", async () => {
    const alice = h.emulator.user("UALICE");
    const root = await alice.postMessage({
      channel: "C0001",
      text: "Login redirects to /undefined after SSO",
    });
    const started = Date.now();
    const mention = await alice.postMessage({
      channel: "C0001",
      threadTs: root.ts,
      text: "<@UBATON> fix it",
    });
    expect(mention.delivery.map((d) => d.status)).toEqual([200, 200]);
    await eventually(
      () =>
        h.emulator
          .reactions("C0001", mention.ts)
          .find((r) => r.name === "eyes" && r.users.includes("UBATON")),
      3000,
    );
    expect(Date.now() - started).toBeLessThan(3000);

    const task = await onlyTask("C0001", root.ts);
    expect(task.id).toMatch(/^T-[0-9A-Z]{6}$/);
    expect(task.repo).toBe("acme/web");
    expect(task.requester.userId).toBe("UALICE");
    expect(task.triggerTs).toBe(mention.ts);
    // "fix it": the request says what "it" is, from the thread.
    expect(task.request.text).toBe(
      `Fix what this thread describes: "Login redirects to /undefined after SSO"`,
    );
    await eventually(() => botMessagesWith("C0001", root.ts, task.id).length > 0);
    await h.app.idle();
    expect(botMessagesWith("C0001", root.ts, task.id)).toHaveLength(1);
    expect(h.runEffects.filter((r) => r.taskId === task.id).map((r) => r.effect.type)).toEqual([
      "start_runs",
    ]);
  });

  test("an empty mention in a thread is a request to fix what the thread describes; a GitHub URL there picks the repo", async () => {
    const bob = h.emulator.user("UBOB");
    const root = await bob.postMessage({
      channel: "C0001",
      text: "Broken since the deploy: https://github.com/acme/api/issues/12",
    });
    const mention = await bob.postMessage({ channel: "C0001", threadTs: root.ts, text: "<@UBATON>" });
    await h.app.idle();
    const task = await onlyTask("C0001", root.ts);
    expect(task.request.text).toBe(
      `Fix what this thread describes: "Broken since the deploy: https://github.com/acme/api/issues/12"`,
    );
    expect(task.repo).toBe("acme/api");
    expect(task.triggerTs).toBe(mention.ts);
  });

  test("a mention in a thread with an active task is a follow-up, not a second task", async () => {
    const carol = h.emulator.user("UCAROL");
    const root = await carol.postMessage({ channel: "C0001", text: "<@UBATON> fix the flaky date test" });
    await h.app.idle();
    const task = await onlyTask("C0001", root.ts);
    const follow = await carol.postMessage({
      channel: "C0001",
      threadTs: root.ts,
      text: "<@UBATON> also check the timezone",
    });
    await h.app.idle();
    const after = await onlyTask("C0001", root.ts);
    expect(after.id).toBe(task.id);
    expect(after.feedback.map((f) => f.text)).toEqual(["also check the timezone"]);
    expect(h.emulator.reactions("C0001", follow.ts).some((r) => r.name === "eyes")).toBe(true);
  });

  test("a stranger's mention gets an ephemeral refusal and no task", async () => {
    const mallory = h.emulator.user("UMALLORY");
    const msg = await mallory.postMessage({ channel: "C0001", text: "<@UBATON> delete the prod database" });
    await h.app.idle();
    expect((await h.tasksInChannel("C0001")).filter((t) => t.threadTs === msg.ts)).toEqual([]);
    const refusals = h.emulator.ephemerals({ user: "UMALLORY" });
    expect(refusals).toHaveLength(1);
    expect(refusals[0]?.text).toContain("<@UADMIN>");
    expect(h.emulator.reactions("C0001", msg.ts)).toEqual([]);
  });

  test("other bots never start work by mention", async () => {
    const bot = h.emulator.user("UOTHERBOT", { isBot: true, botId: "BOTHER" });
    const msg = await bot.postMessage({ channel: "C0001", text: "<@UBATON> fix everything" });
    await h.app.idle();
    expect((await h.tasksInChannel("C0001")).filter((t) => t.threadTs === msg.ts)).toEqual([]);
  });

  test("help and status control words answer privately", async () => {
    const alice = h.emulator.user("UALICE");
    const before = h.emulator.ephemerals({ user: "UALICE" }).length;
    await alice.postMessage({ channel: "C0001", text: "<@UBATON> help" });
    await h.app.idle();
    const answers = h.emulator.ephemerals({ user: "UALICE" }).slice(before);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.text.length).toBeGreaterThan(0);
  });
});

describe("slash command", () => {
  test("/baton help answers within 3 s", async () => {
    const alice = h.emulator.user("UALICE");
    const answer = await alice.slashCommand({ channel: "C0001", text: "help" });
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeLessThan(3000);
    const body = JSON.parse(answer.body) as { response_type: string; text: string; blocks: unknown[] };
    expect(body.response_type).toBe("ephemeral");
    expect(body.blocks.length).toBeGreaterThan(0);
    expect(JSON.stringify(body)).toContain("/baton");
  });

  test("/baton <request> opens a new thread with Baton's root message; 👀 on it; the task lives there", async () => {
    const bob = h.emulator.user("UBOB");
    const answer = await bob.slashCommand({ channel: "CAUTO", text: "fix the 404 on /pricing attempts=2" });
    expect(answer.status).toBe(200);
    const root = await eventually(() =>
      h.emulator.messages("CAUTO").find((m) => m.user === "UBATON" && m.text.includes("404 on /pricing")),
    );
    const task = await onlyTask("CAUTO", root.ts);
    expect(JSON.parse(answer.body).text).toContain(task.id);
    expect(task.source).toBe("slash");
    expect(task.mode).toBe("auto");
    expect(task.attempts).toBe(2);
    expect(task.triggerTs).toBe(root.ts);
    await eventually(() => h.emulator.reactions("CAUTO", root.ts).some((r) => r.name === "eyes"));
    await h.app.idle();
    expect(
      h.runEffects.find((r) => r.taskId === task.id && r.effect.type === "start_runs")?.effect,
    ).toMatchObject({ phase: "implement" });
  });

  test("/baton status, list, budget and config repo", async () => {
    const alice = h.emulator.user("UALICE");
    const list = JSON.parse((await alice.slashCommand({ channel: "C0001", text: "list" })).body) as {
      text: string;
    };
    expect(list.text).toMatch(/task/);
    h.spend.channel.set("CBUDGET", 1.5);
    h.spend.user.set("UALICE", 0.25);
    const budget = JSON.parse((await alice.slashCommand({ channel: "CBUDGET", text: "budget" })).body) as {
      text: string;
    };
    expect(budget.text).toContain("$1.50 of its $5.00");
    expect(budget.text).toContain("$0.25");
    const notAdmin = JSON.parse(
      (await alice.slashCommand({ channel: "CNEW", text: "config repo acme/mobile" })).body,
    ) as { text: string };
    expect(notAdmin.text).toContain("Only Baton admins");
    const admin = h.emulator.user("UADMIN");
    const set = JSON.parse(
      (await admin.slashCommand({ channel: "CNEW", text: "config repo acme/mobile" })).body,
    ) as { text: string };
    expect(set.text).toContain("acme/mobile");
    await alice.postMessage({ channel: "CNEW", text: "<@UBATON> fix the splash screen" });
    await h.app.idle();
    const [task] = await h.tasksInChannel("CNEW");
    expect(task?.repo).toBe("acme/mobile");
    const status = JSON.parse(
      (await alice.slashCommand({ channel: "CNEW", text: `status ${task?.id.toLowerCase()}` })).body,
    ) as { text: string; blocks: unknown[] };
    expect(JSON.stringify(status)).toContain(task?.id);
  });

  test("/baton cancel T-… refuses strangers in its answer and cancels for the requester", async () => {
    const erin = h.emulator.user("UERIN");
    const msg = await erin.postMessage({ channel: "C0001", text: "<@UBATON> fix the sitemap" });
    await h.settle();
    const task = await onlyTask("C0001", msg.ts);
    const stranger = JSON.parse(
      (await h.emulator.user("UBOB").slashCommand({ channel: "C0001", text: `cancel ${task.id}` })).body,
    ) as { text: string };
    expect(stranger.text).toContain("Only");
    expect((await h.store.get(task.id))?.state).toBe("planning");
    const unknown = JSON.parse(
      (await erin.slashCommand({ channel: "C0001", text: "cancel T-ZZZZZZ" })).body,
    ) as { text: string };
    expect(unknown.text).toContain("can't find task T-ZZZZZZ");
    const own = JSON.parse(
      (await erin.slashCommand({ channel: "C0001", text: `cancel ${task.id}` })).body,
    ) as { text: string };
    expect(own.text).toBe(`Cancelled ${task.id}.`);
    await h.settle();
    expect((await h.store.get(task.id))?.state).toBe("cancelled");
    // The status control word in the thread answers privately with the task's status.
    const before = h.emulator.ephemerals({ user: "UERIN" }).length;
    await erin.postMessage({ channel: "C0001", threadTs: msg.ts, text: "<@UBATON> status" });
    await h.settle();
    const answers = h.emulator.ephemerals({ user: "UERIN" }).slice(before);
    expect(answers).toHaveLength(1);
    expect(JSON.stringify(answers[0])).toContain(task.id);
  });

  test("/baton status T-… shows another channel's task only to its requester, approvers and admins", async () => {
    const frank = h.emulator.user("UFRANK");
    const msg = await frank.postMessage({
      channel: "CSECRET",
      text: "<@UBATON> fix the payroll export repo=acme/web",
    });
    await h.settle();
    const task = await onlyTask("CSECRET", msg.ts);
    const elsewhere = async (user: string) =>
      JSON.stringify(
        JSON.parse(
          (await h.emulator.user(user).slashCommand({ channel: "C0001", text: `status ${task.id}` })).body,
        ),
      );
    expect(await elsewhere("UBOB")).toContain(`I can't find task ${task.id}`);
    expect(await elsewhere("UFRANK")).not.toContain("can't find");
    expect(await elsewhere("UAPPROVER")).not.toContain("can't find");
    const sameChannel = JSON.stringify(
      JSON.parse(
        (await h.emulator.user("UBOB").slashCommand({ channel: "CSECRET", text: `status ${task.id}` })).body,
      ),
    );
    expect(sameChannel).not.toContain("can't find");
  });

  test("a spent channel budget refuses new requests", async () => {
    h.spend.channel.set("CBUDGET", 5.01);
    const carol = h.emulator.user("UCAROL");
    const answer = JSON.parse(
      (await carol.slashCommand({ channel: "CBUDGET", text: "fix the header" })).body,
    ) as { text: string };
    expect(answer.text).toContain("budget");
    expect(await h.tasksInChannel("CBUDGET")).toEqual([]);
  });
});

describe("reactions and buttons", () => {
  test("✅ from a non-approver changes nothing (told once, privately); the requester's ✅ approves", async () => {
    const alice = h.emulator.user("UALICE");
    const msg = await alice.postMessage({ channel: "C0001", text: "<@UBATON> fix the redirect loop" });
    await h.app.idle();
    const task = await onlyTask("C0001", msg.ts);
    const planned = await planReady(task.id);
    expect(planned.state).toBe("awaiting_approval");
    // The Notifier posts the plan message and indexes it; reactions are read from it.
    const plan = await eventually(async () => (await h.store.get(task.id))?.slack.planTs);
    await h.settle();
    expect(botMessagesWith("C0001", msg.ts, "Fix the redirect")).toHaveLength(1);
    const before = await h.store.get(task.id);

    const bob = h.emulator.user("UBOB");
    await bob.react({ channel: "C0001", ts: plan, name: "white_check_mark" });
    await bob.react({ channel: "C0001", ts: plan, name: "white_check_mark" });
    await bob.clickButton({
      channel: "C0001",
      messageTs: plan,
      actionId: ACTION_IDS.approve,
      value: task.id,
    });
    await h.settle();
    const unchanged = await h.store.get(task.id);
    expect(unchanged?.state).toBe("awaiting_approval");
    expect(unchanged?.version).toBe(before?.version);
    const notices = h.emulator.ephemerals({ user: "UBOB" });
    expect(notices).toHaveLength(1);

    await alice.react({ channel: "C0001", ts: plan, name: "white_check_mark" });
    await h.app.idle();
    const approved = await h.store.get(task.id);
    expect(approved?.state).toBe("implementing");
    expect(approved?.plan?.approvedBy).toBe("UALICE");
  });

  test("🛠 on any message starts one task for it, however many people react", async () => {
    const carol = h.emulator.user("UCAROL");
    const report = await carol.postMessage({
      channel: "C0001",
      text: "Search returns duplicates since Tuesday",
    });
    await h.app.idle();
    // A stranger's 🛠 is refused privately and does not block the people who may ask.
    await h.emulator.user("UMALLORY").react({ channel: "C0001", ts: report.ts, name: "hammer_and_wrench" });
    await h.settle();
    expect((await h.tasksInChannel("C0001")).filter((t) => t.threadTs === report.ts)).toEqual([]);
    expect(h.emulator.ephemerals({ user: "UMALLORY" }).at(-1)?.text).toContain("not on Baton's list");
    await Promise.all([
      h.emulator.user("UDAVE").react({ channel: "C0001", ts: report.ts, name: "hammer_and_wrench" }),
      h.emulator.user("UERIN").react({ channel: "C0001", ts: report.ts, name: "hammer_and_wrench" }),
    ]);
    await h.app.idle();
    const task = await onlyTask("C0001", report.ts);
    expect(task.source).toBe("reaction");
    expect(["UDAVE", "UERIN"]).toContain(task.requester.userId);
    expect(h.emulator.reactions("C0001", report.ts).find((r) => r.name === "eyes")?.users).toEqual([
      "UBATON",
    ]);
  });

  test("🛠 on a reply in a thread starts the task in that thread, not under the reply", async () => {
    const carol = h.emulator.user("UCAROL");
    const root = await carol.postMessage({ channel: "C0001", text: "Checkout page is blank" });
    const reply = await h.emulator
      .user("UDAVE")
      .postMessage({ channel: "C0001", threadTs: root.ts, text: "TypeError: cart is undefined at render" });
    await h.app.idle();
    await h.emulator.user("UDAVE").react({ channel: "C0001", ts: reply.ts, name: "hammer_and_wrench" });
    await h.app.idle();
    const task = await onlyTask("C0001", root.ts);
    expect(task.triggerTs).toBe(reply.ts);
    expect((await h.tasksInChannel("C0001")).filter((t) => t.threadTs === reply.ts)).toEqual([]);
    // The status message is posted in the original thread.
    const status = await eventually(async () => (await h.store.get(task.id))?.slack.statusTs);
    expect(h.emulator.message("C0001", status)?.threadTs).toBe(root.ts);
  });

  test("🛑 on the status message cancels; the per-user limit refuses a fourth active task", async () => {
    const carolId = "UCAROL";
    const carol = h.emulator.user(carolId);
    const active = (await h.store.listByUser(carolId, 50)).filter(
      (t) => !["no_change", "failed", "rejected", "expired", "cancelled"].includes(t.state),
    );
    for (let i = active.length; i < 3; i++) {
      await carol.postMessage({ channel: "C0001", text: `<@UBATON> fix bug number ${i}` });
    }
    await h.app.idle();
    const refused = await carol.postMessage({ channel: "C0001", text: "<@UBATON> fix one more thing" });
    await h.app.idle();
    expect((await h.tasksInChannel("C0001")).filter((t) => t.threadTs === refused.ts)).toEqual([]);
    expect(h.emulator.ephemerals({ user: carolId }).at(-1)?.text).toContain("limit is 3");

    const [victim] = (await h.store.listByUser(carolId, 50)).filter((t) => t.state === "planning");
    if (!victim) throw new Error("no planning task");
    const withStatus = await eventually(async () => (await h.store.get(victim.id))?.slack.statusTs);
    await carol.react({ channel: "C0001", ts: withStatus, name: "octagonal_sign" });
    await h.app.idle();
    expect((await h.store.get(victim.id))?.state).toBe("cancelled");
    expect(h.runEffects.some((r) => r.taskId === victim.id && r.effect.type === "cancel_runs")).toBe(true);
  });

  test("without a repository Baton asks with a picker; the requester's choice starts the task", async () => {
    const dave = h.emulator.user("UDAVE");
    const msg = await dave.postMessage({
      channel: "CPICK",
      text: "<@UBATON> fix the broken link in the footer",
    });
    await h.settle();
    const task = await onlyTask("CPICK", msg.ts);
    expect(task.state).toBe("received");
    expect(task.repo).toBeUndefined();
    const picker = h.emulator.ephemerals({ user: "UDAVE", channel: "CPICK" }).at(-1);
    expect(JSON.stringify(picker?.blocks)).toContain(ACTION_IDS.repoPick);
    expect(JSON.stringify(picker?.blocks)).toContain(`${task.id}:acme/api`);
    // Someone else's choice does nothing.
    await h.emulator.user("UERIN").selectOption({
      channel: "CPICK",
      actionId: ACTION_IDS.repoPick,
      value: `${task.id}:acme/web`,
      ephemeral: true,
    });
    await h.settle();
    expect((await h.store.get(task.id))?.repo).toBeUndefined();
    await dave.selectOption({
      channel: "CPICK",
      actionId: ACTION_IDS.repoPick,
      value: `${task.id}:acme/api`,
      ephemeral: true,
    });
    await h.settle();
    const started = await h.store.get(task.id);
    expect(started?.repo).toBe("acme/api");
    expect(started?.state).toBe("planning");
    expect(h.runEffects.filter((r) => r.taskId === task.id && r.effect.type === "start_runs")).toHaveLength(
      1,
    );
    expect(h.emulator.reactions("CPICK", msg.ts).some((r) => r.name === "eyes")).toBe(true);
  });

  test("App Home shows the viewer's tasks", async () => {
    const alice = h.emulator.user("UALICE");
    const opened = await alice.openHome();
    expect(opened.status).toBe(200);
    await h.app.idle();
    const views = h.emulator.homeViews("UALICE");
    expect(views).toHaveLength(1);
    const mine = await h.store.listByUser("UALICE", 20);
    expect(mine.length).toBeGreaterThan(0);
    expect(JSON.stringify(views[0])).toContain(mine[0]?.id);
    // Each task links to its thread (the emulator's permalinks carry the thread's ts).
    expect(JSON.stringify(views[0])).toContain(mine[0]!.threadTs.replace(".", ""));
  });
});
