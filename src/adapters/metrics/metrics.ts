// Prometheus metrics (GET /metrics). One registry per process; every adapter records through `Metrics`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  registry: Registry;
  tasksByState: Gauge<"state">;
  runsActive: Gauge;
  runsQueued: Gauge;
  queueWaitSeconds: Histogram;
  slackApiCalls: Counter<"method" | "outcome">;
  slackRateLimited: Counter<"method">;
  modelTokens: Counter<"kind" | "model">;
  modelCostUsd: Counter<"model">;
  ackLatencySeconds: Histogram<"kind">;
  runsFinished: Counter<"phase" | "outcome">;
  queueStalls: Counter;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "baton_" });
  const registers = [registry];
  return {
    registry,
    tasksByState: new Gauge({
      name: "baton_tasks",
      help: "Tasks by state",
      labelNames: ["state"],
      registers,
    }),
    runsActive: new Gauge({ name: "baton_runs_active", help: "Agent runs executing now", registers }),
    runsQueued: new Gauge({ name: "baton_runs_queued", help: "Agent runs waiting for a slot", registers }),
    queueWaitSeconds: new Histogram({
      name: "baton_queue_wait_seconds",
      help: "Time from enqueue to launch",
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    }),
    slackApiCalls: new Counter({
      name: "baton_slack_api_calls_total",
      help: "Slack Web API calls",
      labelNames: ["method", "outcome"],
      registers,
    }),
    slackRateLimited: new Counter({
      name: "baton_slack_rate_limited_total",
      help: "Slack answers with 429",
      labelNames: ["method"],
      registers,
    }),
    modelTokens: new Counter({
      name: "baton_model_tokens_total",
      help: "Model tokens through the gateway",
      labelNames: ["kind", "model"],
      registers,
    }),
    modelCostUsd: new Counter({
      name: "baton_model_cost_usd_total",
      help: "Model cost through the gateway (USD)",
      labelNames: ["model"],
      registers,
    }),
    ackLatencySeconds: new Histogram({
      name: "baton_ack_latency_seconds",
      help: "Time from receiving a Slack request to acknowledging it",
      labelNames: ["kind"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3],
      registers,
    }),
    runsFinished: new Counter({
      name: "baton_runs_finished_total",
      help: "Agent runs that ended",
      labelNames: ["phase", "outcome"],
      registers,
    }),
    queueStalls: new Counter({
      name: "baton_queue_stalls_total",
      help: "Times the queue had waiting runs but nothing active for too long",
      registers,
    }),
  };
}
