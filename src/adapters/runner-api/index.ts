// The runner API adapter: routes for agents (CONTRACT §7), the model gateway and the git proxy.
export { createRunnerApi, type RunnerApi, type RunnerApiDeps } from "./routes.js";
export { budgetFailure, type ModelUpstream } from "./llm-gateway.js";
