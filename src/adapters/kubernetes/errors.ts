// Reading errors from @kubernetes/client-node: the HTTP status, and the API server's Status message
// (error bodies arrive as JSON text).
import { ApiException } from "@kubernetes/client-node";

/** HTTP status of a client-node error (API calls and watch failures), if any. */
export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  if (typeof error === "object" && error !== null) {
    const record = error as { statusCode?: unknown; code?: unknown };
    if (typeof record.statusCode === "number") return record.statusCode;
    if (typeof record.code === "number") return record.code;
  }
  return undefined;
}

/** The `message` of a Kubernetes Status body, whether the client parsed it or left it as text. */
export function statusMessageOf(body: unknown): string | undefined {
  let value = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body) as unknown;
    } catch {
      return body.trim() === "" ? undefined : body.slice(0, 300);
    }
  }
  const message = (value as { message?: unknown } | null | undefined)?.message;
  return typeof message === "string" ? message : undefined;
}

/** One line for logs and reports: `HTTP 403: jobs.batch is forbidden: …` or the error's first line. */
export function describeError(error: unknown): string {
  const status = httpStatusOf(error);
  if (
    error instanceof ApiException ||
    (status !== undefined && typeof error === "object" && error !== null && "body" in error)
  ) {
    const message = statusMessageOf((error as { body?: unknown }).body);
    return `HTTP ${status ?? "error"}${message ? `: ${message}` : ""}`;
  }
  if (status !== undefined) return `HTTP ${status}`;
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
