// A scripted OpenAI-compatible model server for tests: `POST /v1/chat/completions` (streaming SSE
// and not) answers each request with the next scripted reply, validates requests the way the real
// API does (400 with an OpenAI-style error body), records every request, and injects faults per
// turn (HTTP status with retry-after, a stream cut mid-way, a stall). `POST /v1/responses` is
// answered from the same script, without streaming.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface ScriptedToolCall {
  id?: string;
  name: string;
  /** A JSON string (sent verbatim, even if invalid) or a value to serialise. */
  arguments: string | Record<string, unknown>;
}

export type Fault =
  | { kind: "status"; status: number; retryAfterSeconds?: number; body?: unknown }
  /** Sends `afterChunks` chunks of the reply, then destroys the connection. */
  | { kind: "cut"; afterChunks?: number }
  /** Sends `afterChunks` chunks, then nothing for `ms` milliseconds, then the rest. */
  | { kind: "stall"; ms: number; afterChunks?: number };

export interface ScriptedReply {
  content?: string;
  toolCalls?: ScriptedToolCall[];
  fault?: Fault;
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number };
}

export interface RecordedRequest {
  turn: number;
  path: string;
  headers: IncomingMessage["headers"];
  /** Raw body size in bytes. */
  bytes: number;
  body: ChatRequestBody;
  /** Status the emulator answered with. */
  status: number;
}

/** The fields of a Chat Completions request the emulator looks at. */
export interface ChatRequestBody {
  model?: unknown;
  messages?: unknown;
  tools?: unknown;
  stream?: unknown;
  stream_options?: unknown;
  [key: string]: unknown;
}

export type Script =
  ScriptedReply[] | ((request: ChatRequestBody, turn: number) => ScriptedReply | Promise<ScriptedReply>);

export interface ModelEmulatorOptions {
  script: Script;
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
}

export interface ModelEmulator {
  /** Base URL ending in `/v1`, for the openai SDK's baseURL. */
  baseUrl: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

class InvalidRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Checks a request like the real API: model, message structure, tool call pairing, tool schemas. */
export function validateChatRequest(body: unknown): asserts body is ChatRequestBody {
  if (!isObject(body)) throw new InvalidRequest("The request body must be a JSON object.");
  if (typeof body.model !== "string" || body.model === "")
    throw new InvalidRequest("you must provide a model parameter", "model");
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    throw new InvalidRequest("'messages' must be a non-empty array", "messages");
  if (body.stream_options !== undefined && body.stream !== true) {
    throw new InvalidRequest(
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      "stream_options",
    );
  }
  const answered = new Set<string>();
  let pending = new Set<string>();
  body.messages.forEach((message: unknown, i: number) => {
    const param = `messages[${i}]`;
    if (!isObject(message)) throw new InvalidRequest(`${param} must be an object`, param);
    const role = message.role;
    if (role !== "tool" && pending.size > 0) {
      throw new InvalidRequest(
        `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(", ")}`,
        `${param}.role`,
      );
    }
    switch (role) {
      case "system":
      case "developer":
      case "user":
        if (typeof message.content !== "string" && !Array.isArray(message.content))
          throw new InvalidRequest(`${param}.content must be a string or an array`, `${param}.content`);
        break;
      case "assistant": {
        const calls = message.tool_calls;
        if (calls !== undefined) {
          if (!Array.isArray(calls) || calls.length === 0)
            throw new InvalidRequest(`${param}.tool_calls must be a non-empty array`, `${param}.tool_calls`);
          pending = new Set();
          calls.forEach((call: unknown, k: number) => {
            const p = `${param}.tool_calls[${k}]`;
            if (!isObject(call) || typeof call.id !== "string" || call.id === "")
              throw new InvalidRequest(`${p}.id must be a string`, `${p}.id`);
            if (call.type !== "function" || !isObject(call.function))
              throw new InvalidRequest(`${p}.type must be 'function'`, `${p}.type`);
            if (typeof call.function.name !== "string" || !TOOL_NAME.test(call.function.name))
              throw new InvalidRequest(`${p}.function.name is invalid`, `${p}.function.name`);
            if (typeof call.function.arguments !== "string")
              throw new InvalidRequest(`${p}.function.arguments must be a string`, `${p}.function.arguments`);
            pending.add(call.id);
          });
          if (
            message.content !== null &&
            message.content !== undefined &&
            typeof message.content !== "string" &&
            !Array.isArray(message.content)
          ) {
            throw new InvalidRequest(
              `${param}.content must be a string, an array or null`,
              `${param}.content`,
            );
          }
        } else if (typeof message.content !== "string" && !Array.isArray(message.content)) {
          throw new InvalidRequest(
            `${param}.content must be set when there are no tool_calls`,
            `${param}.content`,
          );
        }
        break;
      }
      case "tool": {
        const id = message.tool_call_id;
        if (typeof id !== "string" || !pending.has(id)) {
          throw new InvalidRequest(
            `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.${typeof id === "string" && answered.has(id) ? " (answered twice)" : ""}`,
            `${param}.tool_call_id`,
          );
        }
        if (typeof message.content !== "string" && !Array.isArray(message.content))
          throw new InvalidRequest(`${param}.content must be a string or an array`, `${param}.content`);
        pending.delete(id);
        answered.add(id);
        break;
      }
      default:
        throw new InvalidRequest(`Invalid value for ${param}.role: ${JSON.stringify(role)}`, `${param}.role`);
    }
  });
  if (pending.size > 0) {
    throw new InvalidRequest(
      `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(", ")}`,
      "messages",
    );
  }
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) throw new InvalidRequest("'tools' must be an array", "tools");
    const names = new Set<string>();
    body.tools.forEach((tool: unknown, i: number) => {
      const p = `tools[${i}]`;
      if (!isObject(tool) || tool.type !== "function" || !isObject(tool.function))
        throw new InvalidRequest(`${p} must be a function tool`, p);
      const fn = tool.function;
      if (typeof fn.name !== "string" || !TOOL_NAME.test(fn.name))
        throw new InvalidRequest(`${p}.function.name is invalid`, `${p}.function.name`);
      if (names.has(fn.name))
        throw new InvalidRequest(`${p}.function.name is a duplicate: ${fn.name}`, `${p}.function.name`);
      names.add(fn.name);
      const params = fn.parameters;
      if (params !== undefined) {
        if (!isObject(params) || params.type !== "object")
          throw new InvalidRequest(
            `Invalid schema for function '${fn.name}': schema must be a JSON Schema of 'type: "object"'`,
            `${p}.function.parameters`,
          );
        if (params.properties !== undefined && !isObject(params.properties))
          throw new InvalidRequest(
            `Invalid schema for function '${fn.name}': 'properties' must be an object`,
            `${p}.function.parameters`,
          );
        if (
          params.required !== undefined &&
          (!Array.isArray(params.required) ||
            params.required.some(
              (r) => typeof r !== "string" || !isObject(params.properties) || !(r in params.properties),
            ))
        ) {
          throw new InvalidRequest(
            `Invalid schema for function '${fn.name}': every 'required' entry must name a property`,
            `${p}.function.parameters`,
          );
        }
      }
    });
  }
}

/** The Responses API subset the emulator speaks: non-streaming, text and function-call output. */
export function validateResponsesRequest(body: unknown): asserts body is ChatRequestBody {
  if (!isObject(body)) throw new InvalidRequest("The request body must be a JSON object.");
  if (typeof body.model !== "string" || body.model === "")
    throw new InvalidRequest("you must provide a model parameter", "model");
  if (typeof body.input !== "string" && !Array.isArray(body.input))
    throw new InvalidRequest("'input' must be a string or an array", "input");
  if (body.stream === true)
    throw new InvalidRequest("this emulator answers /v1/responses without streaming only", "stream");
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) throw new InvalidRequest("'tools' must be an array", "tools");
    body.tools.forEach((tool: unknown, i: number) => {
      if (
        !isObject(tool) ||
        tool.type !== "function" ||
        typeof tool.name !== "string" ||
        !TOOL_NAME.test(tool.name)
      ) {
        throw new InvalidRequest(`tools[${i}] must be a function tool with a valid name`, `tools[${i}]`);
      }
      if (
        tool.parameters !== undefined &&
        (!isObject(tool.parameters) || tool.parameters.type !== "object")
      ) {
        throw new InvalidRequest(
          `Invalid schema for function '${tool.name}': schema must be a JSON Schema of 'type: "object"'`,
          `tools[${i}].parameters`,
        );
      }
    });
  }
}

function responsesAnswer(
  out: Normalised,
  index: number,
  model: string,
  created: number,
  usage: {
    prompt_tokens: number;
    completion_tokens: number;
    prompt_tokens_details: { cached_tokens: number };
  },
) {
  const output: unknown[] = [];
  if (out.content !== "") {
    output.push({
      type: "message",
      id: `msg_${index}`,
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: out.content, annotations: [] }],
    });
  }
  out.toolCalls.forEach((c, i) =>
    output.push({
      type: "function_call",
      id: `fc_${index}_${i}`,
      call_id: c.id,
      name: c.name,
      arguments: c.arguments,
      status: "completed",
    }),
  );
  return {
    id: `resp_${index}`,
    object: "response",
    created_at: created,
    status: "completed",
    model,
    output,
    usage: {
      input_tokens: usage.prompt_tokens,
      input_tokens_details: { cached_tokens: usage.prompt_tokens_details.cached_tokens },
      output_tokens: usage.completion_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.prompt_tokens + usage.completion_tokens,
    },
  };
}

function openAiError(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  param: string | null = null,
  code: string | null = null,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ error: { message, type, param, code } }));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new InvalidRequest("request body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function split(text: string, parts: number): string[] {
  if (text.length === 0) return [];
  const size = Math.max(1, Math.ceil(text.length / parts));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

interface Normalised {
  content: string;
  toolCalls: { id: string; name: string; arguments: string }[];
}

function normalise(reply: ScriptedReply, turn: number): Normalised {
  return {
    content: reply.content ?? "",
    toolCalls: (reply.toolCalls ?? []).map((c, i) => ({
      id: c.id ?? `call_${turn}_${i}`,
      name: c.name,
      arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments),
    })),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startModelEmulator(options: ModelEmulatorOptions): Promise<ModelEmulator> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  let turn = 0;

  const nextReply = async (body: ChatRequestBody, index: number): Promise<ScriptedReply | null> => {
    if (typeof options.script === "function") return await options.script(body, index);
    return options.script[index] ?? null;
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const isResponses = url.pathname === "/v1/responses";
      if (req.method === "GET" && url.pathname === "/v1/models") {
        // `baton doctor` probes the endpoint with GET /models (auth checked like the real API).
        if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
          openAiError(
            res,
            401,
            "Incorrect API key provided.",
            "invalid_request_error",
            null,
            "invalid_api_key",
          );
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            object: "list",
            data: [{ id: "gpt-5-codex", object: "model", owned_by: "baton" }],
          }),
        );
        return;
      }
      if (req.method !== "POST" || (url.pathname !== "/v1/chat/completions" && !isResponses)) {
        openAiError(
          res,
          404,
          `Unknown request URL: ${req.method ?? ""} ${url.pathname}`,
          "invalid_request_error",
          null,
          "unknown_url",
        );
        return;
      }
      if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        openAiError(
          res,
          401,
          "Incorrect API key provided.",
          "invalid_request_error",
          null,
          "invalid_api_key",
        );
        return;
      }
      let raw: Buffer;
      let body: unknown;
      try {
        raw = await readBody(req);
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        openAiError(res, 400, "We could not parse the JSON body of your request.", "invalid_request_error");
        return;
      }
      const index = turn++;
      const record: RecordedRequest = {
        turn: index,
        path: url.pathname,
        headers: req.headers,
        bytes: raw.length,
        body: body as ChatRequestBody,
        status: 200,
      };
      requests.push(record);
      try {
        if (isResponses) validateResponsesRequest(body);
        else validateChatRequest(body);
      } catch (error) {
        if (!(error instanceof InvalidRequest)) throw error;
        record.status = 400;
        openAiError(res, 400, error.message, "invalid_request_error", error.param);
        return;
      }
      const reply = await nextReply(body, index);
      if (reply === null) {
        record.status = 500;
        openAiError(res, 500, `the test script has no reply for turn ${index}`, "server_error");
        return;
      }
      const fault = reply.fault;
      if (fault?.kind === "status") {
        record.status = fault.status;
        const headers: Record<string, string> =
          fault.retryAfterSeconds === undefined ? {} : { "retry-after": String(fault.retryAfterSeconds) };
        res.writeHead(fault.status, { "content-type": "application/json", ...headers });
        res.end(
          JSON.stringify(
            fault.body ?? {
              error: {
                message: `scripted ${fault.status}`,
                type: fault.status === 429 ? "rate_limit_exceeded" : "server_error",
                param: null,
                code: null,
              },
            },
          ),
        );
        return;
      }
      const out = normalise(reply, index);
      const usage = {
        prompt_tokens: reply.usage?.prompt_tokens ?? Math.ceil(raw.length / 4),
        completion_tokens:
          reply.usage?.completion_tokens ??
          Math.ceil((out.content.length + out.toolCalls.reduce((n, c) => n + c.arguments.length, 0)) / 4) + 1,
        total_tokens: 0,
        prompt_tokens_details: { cached_tokens: reply.usage?.cached_tokens ?? 0 },
      };
      usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
      const created = Math.floor(Date.now() / 1000);
      const model = String(body.model);
      if (isResponses) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(responsesAnswer(out, index, model, created, usage)));
        return;
      }
      const id = `chatcmpl-${index}`;
      const finishReason = out.toolCalls.length > 0 ? "tool_calls" : "stop";
      if (body.stream !== true) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            id,
            object: "chat.completion",
            created,
            model,
            choices: [
              {
                index: 0,
                message: {
                  role: "assistant",
                  content: out.content === "" && out.toolCalls.length > 0 ? null : out.content,
                  ...(out.toolCalls.length > 0
                    ? {
                        tool_calls: out.toolCalls.map((c) => ({
                          id: c.id,
                          type: "function",
                          function: { name: c.name, arguments: c.arguments },
                        })),
                      }
                    : {}),
                  refusal: null,
                },
                finish_reason: finishReason,
                logprobs: null,
              },
            ],
            usage,
          }),
        );
        return;
      }
      const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      });
      const chunks: unknown[] = [chunk({ role: "assistant", content: "" })];
      for (const piece of split(out.content, 3)) chunks.push(chunk({ content: piece }));
      out.toolCalls.forEach((call, i) => {
        chunks.push(
          chunk({
            tool_calls: [
              { index: i, id: call.id, type: "function", function: { name: call.name, arguments: "" } },
            ],
          }),
        );
        // Arguments arrive in several pieces, as they do from the real API.
        for (const piece of split(call.arguments, 4))
          chunks.push(chunk({ tool_calls: [{ index: i, function: { arguments: piece } }] }));
      });
      chunks.push(chunk({}, finishReason));
      const so = body.stream_options as { include_usage?: boolean } | undefined;
      if (so?.include_usage === true)
        chunks.push({ id, object: "chat.completion.chunk", created, model, choices: [], usage });
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      let closed = false;
      res.on("close", () => (closed = true));
      for (let i = 0; i < chunks.length; i++) {
        if (closed) return;
        if (fault?.kind === "cut" && i === (fault.afterChunks ?? 1)) {
          record.status = -1;
          res.socket?.destroy();
          return;
        }
        if (fault?.kind === "stall" && i === (fault.afterChunks ?? 1)) {
          const until = Date.now() + fault.ms;
          while (!closed && Date.now() < until) await sleep(Math.min(20, until - Date.now()));
          if (closed) return;
        }
        res.write(`data: ${JSON.stringify(chunks[i])}\n\n`);
      }
      res.end("data: [DONE]\n\n");
    })().catch((error: unknown) => {
      if (!res.headersSent)
        openAiError(res, 500, `emulator error: ${(error as Error).message}`, "server_error");
      else res.destroy();
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
