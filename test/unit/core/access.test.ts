// Access rules: who may request work, who may control a task, who is an admin.
import { describe, expect, test } from "@jest/globals";
import { actorFor, isAdmin, mayControl, mayRequest, type AccessPolicy } from "../../../src/core/access.js";
import { newTask } from "../../../src/core/task.js";

const policy: AccessPolicy = { users: ["U_USER"], approvers: ["U_APPROVER"], admins: ["U_ADMIN"] };
const open: AccessPolicy = { users: [], approvers: ["U_APPROVER"], admins: [] };

const task = newTask({
  id: "T-ABC123",
  now: "2026-01-01T00:00:00.000Z",
  requester: { userId: "U_REQUESTER" },
  channelId: "C1",
  threadTs: "1.0",
  triggerTs: "1.0",
  source: "mention",
  text: "fix it",
  mode: "plan",
  attempts: 1,
});

describe("actorFor", () => {
  test.each([
    ["U_USER", false, false],
    ["U_APPROVER", true, false],
    ["U_ADMIN", false, true],
    ["U_STRANGER", false, false],
  ])("%s -> approver %s, admin %s", (userId, approver, admin) => {
    expect(actorFor(userId, policy)).toEqual({ userId, approver, admin });
  });

  test("someone in both lists holds both roles", () => {
    expect(actorFor("U_BOTH", { users: [], approvers: ["U_BOTH"], admins: ["U_BOTH"] })).toEqual({
      userId: "U_BOTH",
      approver: true,
      admin: true,
    });
  });
});

describe("mayRequest", () => {
  test.each([
    ["U_USER", true],
    ["U_APPROVER", true],
    ["U_ADMIN", true],
    ["U_STRANGER", false],
  ])("with a users list: %s -> %s", (userId, allowed) => {
    expect(mayRequest(userId, policy)).toBe(allowed);
  });

  test("an empty users list lets anyone request", () => {
    expect(mayRequest("U_STRANGER", open)).toBe(true);
  });
});

describe("mayControl", () => {
  test.each([
    ["the requester", { userId: "U_REQUESTER", approver: false, admin: false }, true],
    ["an approver", { userId: "U_APPROVER", approver: true, admin: false }, true],
    ["an admin", { userId: "U_ADMIN", approver: false, admin: true }, true],
    ["an allowed user who is not the requester", { userId: "U_USER", approver: false, admin: false }, false],
    ["a stranger", { userId: "U_STRANGER", approver: false, admin: false }, false],
  ])("%s -> %s", (_who, actor, allowed) => {
    expect(mayControl(task, actor)).toBe(allowed);
  });

  test("roles come from the policy through actorFor", () => {
    expect(mayControl(task, actorFor("U_APPROVER", policy))).toBe(true);
    expect(mayControl(task, actorFor("U_USER", policy))).toBe(false);
    expect(mayControl(task, actorFor("U_REQUESTER", policy))).toBe(true);
  });
});

describe("isAdmin", () => {
  test("only the admins list counts", () => {
    expect(isAdmin("U_ADMIN", policy)).toBe(true);
    expect(isAdmin("U_APPROVER", policy)).toBe(false);
    expect(isAdmin("U_USER", policy)).toBe(false);
  });
});
