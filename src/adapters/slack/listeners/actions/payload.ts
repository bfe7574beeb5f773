// The parts of a `block_actions` payload the button listeners rely on.
import { z } from "zod";
import { isTaskId, type TaskId } from "../../../../core/task.js";

export const BlockAction = z.looseObject({
  action_id: z.string(),
  block_id: z.string().optional(),
  value: z.string().optional(),
  selected_option: z.looseObject({ value: z.string() }).optional(),
});

export const BlockActionsBody = z.looseObject({
  type: z.literal("block_actions"),
  user: z.looseObject({ id: z.string().min(1) }),
  channel: z.looseObject({ id: z.string() }).optional(),
  container: z
    .looseObject({
      channel_id: z.string().optional(),
      message_ts: z.string().optional(),
      thread_ts: z.string().optional(),
    })
    .optional(),
  message: z.looseObject({ ts: z.string().optional(), thread_ts: z.string().optional() }).optional(),
});

export interface ButtonClick {
  user: string;
  channel?: string;
  messageTs?: string;
  action: z.infer<typeof BlockAction>;
}

/** Validates a click; undefined when the payload lacks what a listener needs. */
export function readClick(body: unknown, action: unknown): ButtonClick | undefined {
  const b = BlockActionsBody.safeParse(body);
  const a = BlockAction.safeParse(action);
  if (!b.success || !a.success) return undefined;
  const channel = b.data.channel?.id ?? b.data.container?.channel_id;
  const messageTs = b.data.container?.message_ts ?? b.data.message?.ts;
  return {
    user: b.data.user.id,
    ...(channel ? { channel } : {}),
    ...(messageTs ? { messageTs } : {}),
    action: a.data,
  };
}

/** A task id typed or carried in a button value (`T-…`, or `T-…:<attempt>` for choose). */
export function taskIdIn(value: string | undefined): TaskId | undefined {
  const id = (value ?? "").split(/[:|]/)[0]?.trim().toUpperCase() ?? "";
  return isTaskId(id) ? id : undefined;
}
