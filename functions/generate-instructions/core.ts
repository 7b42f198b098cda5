/**
 * Stage "Generate instructions" (Self-Instruct step 2): each call shows the model a few seed and
 * machine-made tasks and asks for new ones (in the profile's prompt, or the run's own template of it);
 * replies are parsed into candidates, which the next stage filters. The number of calls is sized from the remaining target and the last iteration's yield.
 */

import { machineDemonstrations } from '../shared/demonstrations.ts';
import { fromJsonLines, toJsonLines } from '../shared/json-lines.ts';
import { runKeys } from '../shared/keys.ts';
import { INSTRUCTIONS_SCOPE, ModelCalls } from '../shared/model-calls.ts';
import { committedPool } from '../shared/pool-index.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore, TextModel } from '../shared/ports.ts';
import { runTemplates } from '../shared/prompt-templates.ts';
import { createRng } from '../shared/random.ts';
import type { Candidate, RunState, SeedTask, UsageByStage } from '../shared/schemas.ts';
import { parseInstructionReply, renderInstructionRequest, selectDemonstrations } from './prompt.ts';

/** Complete tasks per call assumed before a run has measured its own. */
export const DEFAULT_YIELD_PER_PROMPT = 4;

/** Calls are sized for this much more than the iteration's share of the remaining target. */
export const SIZING_MARGIN = 1.2;
/** … and the last iteration, which has no next one to make up a shortfall, for this much more. */
export const LAST_ITERATION_MARGIN = 1.5;

export interface GenerateInstructionsResult {
  candidatesKey: string;
  prompts: number;
  candidates: number;
  malformed: number;
  droppedByTruncation: number;
  /** Calls that still failed after their retries (within the share a stage may lose). */
  lost: number;
  /** Calls a `replay:` model had no recording for (and no fallback to make them). */
  notRecorded: number;
  /** What this attempt was billed (the run's usage is the sum of the recorded calls). */
  usage: UsageByStage;
}

export interface GenerateInstructionsDeps {
  objects: ObjectStore;
  pool: PoolStore;
  model: TextModel;
  /** Milliseconds the function has left. */
  remainingMs?: () => number;
}

/** How many instruction-generation calls this iteration makes. */
export function promptsForIteration({ config, progress }: RunState): number {
  if (config.promptsPerIteration) return config.promptsPerIteration;
  const remaining = Math.max(1, config.target - progress.added);
  const iterationsLeft = Math.max(1, config.maxIterations - progress.iteration);
  const perIteration = Math.ceil(remaining / iterationsLeft);
  const yieldPerPrompt = Math.max(0.25, progress.yieldPerPrompt ?? DEFAULT_YIELD_PER_PROMPT);
  // Aim high: yields fall as the pool grows, and one more call is cheaper than missing the target.
  const margin = iterationsLeft === 1 ? LAST_ITERATION_MARGIN : SIZING_MARGIN;
  const prompts = Math.ceil((perIteration * margin) / yieldPerPrompt);
  return Math.min(config.maxPromptsPerIteration, Math.max(1, prompts));
}

export async function generateInstructions(
  state: RunState,
  { objects, pool, model, remainingMs }: GenerateInstructionsDeps,
): Promise<GenerateInstructionsResult> {
  const { runId, config, progress } = state;
  const iteration = progress.iteration + 1;
  const keys = runKeys(runId, iteration);
  await holdPool(pool, config.pool, runId, progress.fence);

  // Demonstrations come from the pool as committed: the same for every attempt of this stage.
  const committed = await committedPool(pool, config.pool);
  const seeds = fromJsonLines<SeedTask>(await objects.getText(committed.seedsKey));
  const seedInstructions = new Set(seeds.map((task) => task.instruction.trim()));
  const diverse = config.diverseDemonstrations ?? config.profile === 'default';
  const machineDemos = await machineDemonstrations(objects, committed, { seeds: seedInstructions, diverse });
  const seedDemos = seeds.map((task) => ({
    instruction: task.instruction,
    input: task.instances[0]?.input,
    output: task.instances[0]?.output,
  }));

  const rng = createRng(`${config.seed}:iteration-${progress.iteration + 1}:instructions`);
  // A replay re-gates what its recorded run generated: as many calls as that run made in this iteration.
  const prompts = (await model.recordedInstructionCalls?.(iteration)) ?? promptsForIteration(state);
  const templates = await runTemplates(objects, runId, config);
  const requests = Array.from({ length: prompts }, () => {
    const demonstrations = selectDemonstrations(config.profile, seedDemos, machineDemos, rng);
    return {
      request: renderInstructionRequest(config.profile, demonstrations, templates),
      demonstrations: demonstrations.length,
    };
  });

  const calls = new ModelCalls(model, {
    sampling: config,
    ledger: { pool, runId, iteration, scope: INSTRUCTIONS_SCOPE },
    concurrency: config.callConcurrency,
    remainingMs,
  });
  const replies = await Promise.all(
    requests.map(async ({ request, demonstrations }, call) => {
      const reply = await calls.call(request, `prompt-${call}`);
      return reply && parseInstructionReply(config.profile, reply, { demonstrations });
    }),
  );
  calls.checkLosses();
  const parsed = replies.map((reply) => reply ?? { candidates: [], malformed: 0, droppedByTruncation: 0 });

  const candidates: (Candidate & { call: number })[] = parsed.flatMap((reply, call) =>
    reply.candidates.map((candidate) => ({ ...candidate, call })),
  );
  await objects.put(keys.candidates, toJsonLines(candidates), 'application/jsonl');
  await objects.put(keys.raw('generate-instructions'), calls.toJsonLines(), 'application/jsonl');

  return {
    candidatesKey: keys.candidates,
    prompts,
    candidates: candidates.length,
    malformed: parsed.reduce((sum, reply) => sum + reply.malformed, 0),
    droppedByTruncation: parsed.reduce((sum, reply) => sum + reply.droppedByTruncation, 0),
    lost: calls.lost,
    notRecorded: calls.notRecorded.size,
    usage: calls.usage,
  };
}
