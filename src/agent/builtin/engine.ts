// The built-in engine: a tool-calling loop over Chat Completions. Each step: pick up thread
// messages and cancellation, send the bounded conversation, run the tool calls, repeat until
// submit_plan/finish or a limit (steps, tokens, wall clock) ends the run.
import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionTool,
  ChatCompletionToolMessageParam,
} from "openai/resources/chat/completions";
import type { Engine, EngineContext, EngineOutcome } from "../engine.js";
import { callTool, toolSpecs, toolsForPhase, type ToolHost, type ToolResult } from "../tools/index.js";
import { Conversation } from "./context.js";
import { ModelClient, ModelFailure } from "./llm.js";
import { NO_TOOL_NUDGE, systemPrompt, taskMessage, threadMessageNote } from "./prompts.js";

/** Errors a tool hits on a bad path or file: the model can fix those, so they go back to it. */
const TOOL_ERRNO = new Set([
  "EACCES",
  "EPERM",
  "EISDIR",
  "ENOENT",
  "ENOTDIR",
  "ELOOP",
  "ENAMETOOLONG",
  "EEXIST",
  "ENOTEMPTY",
  "EINVAL",
]);
const MAX_TURNS_WITHOUT_TOOLS = 3;
const MESSAGE_EVENT_MAX = 4_000;

export const builtinEngine: Engine = {
  name: "builtin",
  async run(ctx: EngineContext): Promise<EngineOutcome> {
    const { spec, tuning } = ctx;
    const tools = toolsForPhase(spec.phase);
    const specs = toolSpecs(tools) as ChatCompletionTool[];
    const conversation = new Conversation(
      [
        { role: "system", content: systemPrompt(spec.phase) },
        { role: "user", content: taskMessage(spec, ctx.agentsMd) },
      ],
      { highChars: tuning.contextHighChars, lowChars: tuning.contextLowChars },
    );
    const host: ToolHost = {
      workspace: ctx.host.workspace,
      outputDir: ctx.host.outputDir,
      env: ctx.host.env,
      signal: ctx.host.signal,
      remainingMs: () => ctx.host.remainingMs(),
      commandFinished: (entry) => ctx.host.commandFinished(entry),
      filesChanged: (paths) => ctx.host.filesChanged(paths),
      planUpdated: (steps) => {
        conversation.setPlan(steps);
        ctx.host.planUpdated(steps);
      },
    };
    const model = new ModelClient({
      baseUrl: ctx.llm.baseUrl,
      apiKey: ctx.llm.apiKey,
      model: spec.model,
      tuning,
      onRetry: (info) => ctx.log("model call failed; retrying", info),
    });
    let tokens = 0;
    let turnsWithoutTools = 0;
    for (let step = 1; step <= spec.limits.maxSteps; step++) {
      await ctx.sync();
      if (ctx.isCancelled()) return { kind: "cancelled" };
      if (Date.now() >= ctx.deadline)
        return {
          kind: "failed",
          code: "timeout",
          message: `the run reached its wall-clock limit (${spec.limits.wallClockMs} ms)`,
          retryable: false,
        };
      for (const message of ctx.takeMessages())
        conversation.addUserMessage(threadMessageNote(message.author, message.text));

      const messages = conversation.messages();
      let turn;
      try {
        turn = await model.turn(messages, specs, ctx.deadline, ctx.signal);
      } catch (error) {
        if (error instanceof ModelFailure) {
          if (error.code === "cancelled") return { kind: "cancelled" };
          return { kind: "failed", code: error.code, message: error.message, retryable: error.retryable };
        }
        throw error;
      }
      const usage = turn.usage ?? {
        // A gateway that sends no usage still counts against the limit, by estimate.
        promptTokens: Math.ceil(JSON.stringify(messages).length / 4),
        completionTokens: Math.ceil(
          (turn.content.length + turn.toolCalls.reduce((n, c) => n + c.arguments.length, 0)) / 4,
        ),
        cachedTokens: 0,
      };
      ctx.emit({ type: "usage", ...usage });
      tokens += usage.promptTokens + usage.completionTokens;
      if (turn.content.trim() !== "")
        ctx.emit({ type: "message", text: turn.content.slice(0, MESSAGE_EVENT_MAX) });

      const assistant: ChatCompletionAssistantMessageParam = {
        role: "assistant",
        content: turn.content === "" ? null : turn.content,
        ...(turn.toolCalls.length > 0
          ? {
              tool_calls: turn.toolCalls.map((c) => ({
                id: c.id,
                type: "function" as const,
                function: { name: c.name, arguments: c.arguments },
              })),
            }
          : {}),
      };
      if (turn.toolCalls.length === 0) {
        conversation.addStep(assistant, []);
        turnsWithoutTools++;
        if (turnsWithoutTools >= MAX_TURNS_WITHOUT_TOOLS) {
          return {
            kind: "failed",
            code: "no_progress",
            message: `the model answered ${turnsWithoutTools} times without calling a tool`,
            retryable: true,
          };
        }
        conversation.addUserMessage(NO_TOOL_NUDGE);
        continue;
      }
      turnsWithoutTools = 0;

      const results: ChatCompletionToolMessageParam[] = [];
      let outcome: EngineOutcome | null = null;
      for (const call of turn.toolCalls) {
        if (outcome !== null) {
          results.push({ role: "tool", tool_call_id: call.id, content: "not run: the run already ended" });
          continue;
        }
        let result: ToolResult;
        try {
          result = await callTool(tools, call.name, call.arguments, host);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === undefined || !TOOL_ERRNO.has(code)) throw error;
          result = { output: `${call.name} failed: ${(error as Error).message}`, isError: true };
        }
        results.push({ role: "tool", tool_call_id: call.id, content: result.output });
        if (result.terminal?.kind === "plan")
          outcome = { kind: "plan", summary: result.terminal.summary, steps: result.terminal.steps };
        if (result.terminal?.kind === "finish")
          outcome = { kind: "finished", summary: result.terminal.summary };
        if (ctx.signal.aborted) break;
      }
      if (outcome !== null) return outcome;
      if (ctx.signal.aborted) {
        if (ctx.isCancelled()) return { kind: "cancelled" };
        return {
          kind: "failed",
          code: "timeout",
          message: `the run reached its wall-clock limit (${spec.limits.wallClockMs} ms)`,
          retryable: false,
        };
      }
      conversation.addStep(assistant, results);
      if (tokens >= spec.limits.maxTokens) {
        return {
          kind: "failed",
          code: "token_limit",
          message: `the run used its token limit (${tokens} of ${spec.limits.maxTokens})`,
          retryable: false,
        };
      }
    }
    if (ctx.signal.aborted && ctx.isCancelled()) return { kind: "cancelled" };
    return {
      kind: "failed",
      code: "step_limit",
      message: `the run reached its step limit (${spec.limits.maxSteps}) before finishing`,
      retryable: false,
    };
  },
};
