/**
 * One iteration of a small run on in-memory ports, through the stage cores in the state machine's order
 * up to "Generate instances", for the unit tests of a step inside it (the judge, the teacher, batch mode's
 * submit and check): the run prepared on pool `demo` from the test seed set, 3 prompts, target 1,000,
 * `input` over that; then "Generate instructions", "Filter and deduplicate" and every chunk of "Generate
 * instances".
 */
import { afterAll, beforeAll } from 'vitest';
import { filterAndDeduplicate } from '../../functions/filter/core.ts';
import { generateInstances } from '../../functions/generate-instances/core.ts';
import { generateInstructions } from '../../functions/generate-instructions/core.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { saveIteration } from '../../functions/save-iteration/core.ts';
import { toJsonLines } from '../../functions/shared/json-lines.ts';
import type { PoolTask, TextModel } from '../../functions/shared/ports.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from '../unit/fakes.ts';

/** Model-call retries wait 1–2 ms instead of seconds in the tests of the calling file. */
export function useFastRetries(): void {
  beforeAll(() => {
    process.env.SELFINSTRUCT_RETRY_BASE_MS = '1';
    process.env.SELFINSTRUCT_RETRY_MAX_MS = '2';
  });
  afterAll(() => {
    delete process.env.SELFINSTRUCT_RETRY_BASE_MS;
    delete process.env.SELFINSTRUCT_RETRY_MAX_MS;
  });
}

/** The models the stages call: the run's, and the judge and teacher when the test gives its own. */
export interface IterationModels {
  model: TextModel;
  judge?: TextModel;
  teacher?: TextModel;
}

/**
 * Runs the iteration (see the module comment) up to the gate: the run prepared, "Generate instructions"
 * and "Filter and deduplicate"; returns the ports, the run's state and both stages' results.
 */
export async function iterationToGate(input: Record<string, unknown>, models: IterationModels) {
  const objects = new MemoryObjects();
  const pool = new MemoryPool();
  await objects.put('seeds/demo/seeds.jsonl', toJsonLines(SEED_TASKS));
  const state = await prepareRun(
    {
      runId: 'run-1',
      input: { seedKey: 'seeds/demo/seeds.jsonl', promptsPerIteration: 3, target: 1000, ...input },
    },
    { objects, pool },
  );
  const deps = { objects, pool, ...models };
  const generated = await generateInstructions(state, deps);
  const gated = await filterAndDeduplicate({ ...state, candidatesKey: generated.candidatesKey }, deps);
  return { objects, pool, deps, state, generated, gated };
}

/**
 * Runs the iteration (see the module comment) and returns the ports, the iteration's tasks as stored,
 * the Map items' results and `save`, which runs "Save iteration" on them.
 */
export async function iterationToInstances(input: Record<string, unknown>, models: IterationModels) {
  const { objects, pool, deps, state, generated, gated } = await iterationToGate(input, models);
  const instances: Awaited<ReturnType<typeof generateInstances>>[] = [];
  for (const chunk of gated.chunks) instances.push(await generateInstances({ ...state, chunk }, deps));
  const tasks = (await pool.getTasks(
    'demo',
    gated.chunks.flatMap((chunk) => chunk.ids),
  )) as PoolTask[];
  const save = () => saveIteration({ ...state, generated, gated, instances }, deps);
  return { objects, pool, tasks, instances, save };
}
