// A tiny scripted OpenAI-compatible server for the gateway tests: answers chat completions (JSON or
// SSE with a usage chunk when asked) with fixed token counts, and records every request it got.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export interface FakeUpstream {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

async function bodyOf(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startFakeUpstream(usage: {
  prompt: number;
  completion: number;
  cached?: number;
}): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  const usageJson = {
    prompt_tokens: usage.prompt,
    completion_tokens: usage.completion,
    total_tokens: usage.prompt + usage.completion,
    prompt_tokens_details: { cached_tokens: usage.cached ?? 0 },
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = JSON.parse(await bodyOf(req)) as Record<string, unknown>;
      requests.push({ path: req.url ?? "", authorization: req.headers.authorization, body });
      if (req.url === "/v1/responses") {
        // Responses API: usage arrives in the final `response.completed` event (or the JSON body).
        const response = {
          id: "resp_1",
          object: "response",
          model: body.model,
          output: [],
          usage: {
            input_tokens: usage.prompt,
            output_tokens: usage.completion,
            total_tokens: usage.prompt + usage.completion,
            input_tokens_details: { cached_tokens: usage.cached ?? 0 },
          },
        };
        if (body.stream === true) {
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write(
            `event: response.created\ndata: ${JSON.stringify({ type: "response.created", response: { ...response, usage: null } })}\n\n`,
          );
          res.end(
            `event: response.completed\ndata: ${JSON.stringify({ type: "response.completed", response })}\n\n`,
          );
        } else {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(response));
        }
        return;
      }
      if (req.url !== "/v1/chat/completions") {
        res.writeHead(404).end();
        return;
      }
      const base = { id: "chatcmpl-1", object: "chat.completion", created: 1, model: body.model };
      if (body.stream === true) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        const chunk = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
        chunk({
          ...base,
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: { role: "assistant", content: "he" } }],
        });
        chunk({
          ...base,
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: { content: "llo" }, finish_reason: "stop" }],
        });
        const options = body.stream_options as { include_usage?: boolean } | undefined;
        if (options?.include_usage)
          chunk({ ...base, object: "chat.completion.chunk", choices: [], usage: usageJson });
        res.end("data: [DONE]\n\n");
        return;
      }
      const answer = {
        ...base,
        choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
        usage: usageJson,
      };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
