// Runs the effects of a transition: each Effect goes to the Slack notifier, the run control or the
// publisher. One effect failing is logged and does not stop the others (each is idempotent and the
// next event re-renders the status anyway).
import type { PublishControl, RunControl, TaskNotifier } from "../core/ports/effects.js";
import type { Effect, Task } from "../core/task.js";
import type { Logger } from "../shared/logger.js";
import type { EffectRunner } from "./task-events.js";

export interface EffectRunnerDeps {
  notifier: TaskNotifier;
  runs: RunControl;
  publisher: PublishControl;
  logger: Logger;
}

export function createEffectRunner(deps: EffectRunnerDeps): EffectRunner {
  const runOne = async (task: Task, effect: Effect): Promise<void> => {
    switch (effect.type) {
      case "start_runs":
        return deps.runs.start(task, effect.runIds);
      case "cancel_runs":
        return deps.runs.cancel(task, effect.runIds);
      case "relay_to_runs":
        return deps.runs.relay(task, effect.runIds, effect.text, effect.userId);
      case "publish":
        return deps.publisher.publish(task, effect.attempt, effect.runId);
      case "close_pr":
        return deps.publisher.closePullRequest(task, effect.number);
      case "update_status":
      case "post_plan":
      case "post_attempts_summary":
      case "post_result":
      case "notify_user":
        return deps.notifier.handle(task, effect);
    }
  };

  return {
    async run(task, effects) {
      // Runs and publishing first: a slow Slack must not delay a launch.
      const ordered = [...effects].sort((a, b) => rank(a) - rank(b));
      for (const effect of ordered) {
        try {
          await runOne(task, effect);
        } catch (error) {
          deps.logger.error({ taskId: task.id, effect: effect.type, err: error }, "effect failed");
        }
      }
    },
  };
}

function rank(effect: Effect): number {
  switch (effect.type) {
    case "cancel_runs":
    case "start_runs":
    case "relay_to_runs":
      return 0;
    case "publish":
    case "close_pr":
      return 1;
    default:
      return 2;
  }
}
