// Standalone entry for `baton agent` (used by tests and images that run the agent directly; the
// `baton` CLI calls runAgent the same way).
import { runAgent } from "./main.js";

process.exitCode = await runAgent(process.env);
