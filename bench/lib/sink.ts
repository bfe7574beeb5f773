// An HTTP endpoint that accepts and ignores whatever the Slack emulator delivers (user messages in
// benchmarks that drive the Notifier directly, with no app behind it).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export async function startSink(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end(""));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
