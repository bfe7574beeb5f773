// The engines this agent can run, by the run spec's `engine` name.
import { builtinEngine } from "./builtin/engine.js";
import type { Engine } from "./engine.js";

const ENGINES: readonly Engine[] = [builtinEngine];

export function selectEngine(name: string): Engine | undefined {
  return ENGINES.find((engine) => engine.name === name);
}
