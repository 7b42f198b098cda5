/**
 * "Generate instructions" as a Map of batches: at 52,000 tasks one Lambda making all of an iteration's
 * calls is the run's wall-time bottleneck, so the state machine runs the stage in three steps of the
 * same function (`InstructionsInput.instructions.phase`):
 *
 *   Plan instructions → Generate instructions (Map: Generate a batch of instructions) → Collect instructions
 *
 * - `plan` sizes the iteration's calls (as the stage in one invocation does) and splits them into batches
 *   of `instructionBatchSize`: `[from, to)` ranges of call indices, which the Map's items carry (never
 *   payloads).
 * - `batch` makes the calls of one range. Every batch draws the whole iteration's requests with the
 *   iteration's seeded generator and makes only its own, so each call (its key `prompt-<n>` in the
 *   iteration's ledger scope, and its prompt) is the one the stage in one invocation would make; a batch
 *   run twice (Retry, a duplicated Map item, a redrive) finds its calls recorded and is served the same
 *   replies without paying again. It stores its candidates, raw calls and result under keys fixed by run,
 *   iteration and batch (`runKeys(...).instructionBatch(b)`), overwriting what an earlier attempt wrote
 *   with the same.
 * - `collect` joins the batches' candidates and raw calls, in batch order, into the iteration's
 *   `candidates.jsonl` and raw calls ("Filter and deduplicate", `estimate` and `replay:` read them as
 *   before) and returns the stage's result, summed, for "Save iteration" (which takes the iteration's
 *   usage from the ledger: every billed call once).
 */
import { z } from 'zod';
import { IterationIncomplete } from '../shared/errors.ts';
import { toJsonLines } from '../shared/json-lines.ts';
import { runKeys } from '../shared/keys.ts';
import { addUsageByStage } from '../shared/model-calls.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore } from '../shared/ports.ts';
import { RunState, type UsageByStage } from '../shared/schemas.ts';
import { stageResult } from './calls.ts';
import {
  type GenerateInstructionsDeps,
  type GenerateInstructionsResult,
  generateInstructions,
  iterationPrompts,
  makeInstructionCalls,
} from './core.ts';

/** One item of the "Generate instructions" Map: the calls `[from, to)` of the iteration. */
export const InstructionBatch = z.object({
  batch: z.int().min(0),
  from: z.int().min(0),
  to: z.int().min(1),
});
export type InstructionBatch = z.infer<typeof InstructionBatch>;

/** The stage's input: the run state, and the step of the Map of batches (none: all calls in one go). */
export const InstructionsInput = RunState.extend({
  instructions: z
    .discriminatedUnion('phase', [
      z.object({ phase: z.literal('plan') }),
      z.object({ phase: z.literal('batch'), prompts: z.int().min(1), batch: InstructionBatch }),
      z.object({ phase: z.literal('collect'), batches: z.array(InstructionBatch) }),
    ])
    .optional(),
});
export type InstructionsInput = z.infer<typeof InstructionsInput>;

/** What "Plan instructions" returns: the iteration's calls and their batches (the Map's items). */
export interface InstructionPlan {
  prompts: number;
  batches: InstructionBatch[];
}

/** What one batch returns (and stores at its `result` key): the stage's counts for its calls. */
export type BatchResult = Omit<GenerateInstructionsResult, 'candidatesKey'> & {
  batch: number;
  candidatesKey: string;
};

/** Splits `prompts` calls into batches of `batchSize`, in order (the last may be smaller). */
export function planBatches(prompts: number, batchSize: number): InstructionBatch[] {
  return Array.from({ length: Math.ceil(prompts / batchSize) }, (_, batch) => ({
    batch,
    from: batch * batchSize,
    to: Math.min(prompts, (batch + 1) * batchSize),
  }));
}

/** "Plan instructions": the iteration's calls, sized as the stage sizes them, in batches. */
export async function planInstructions(
  state: RunState,
  deps: GenerateInstructionsDeps,
): Promise<InstructionPlan> {
  const { config } = state;
  await holdPool(deps.pool, state);
  const prompts = await iterationPrompts(state, deps);
  return { prompts, batches: planBatches(prompts, config.instructionBatchSize) };
}

/** "Generate a batch of instructions": the calls of one batch, stored under the batch's keys. */
export async function generateInstructionBatch(
  state: RunState,
  prompts: number,
  { batch, from, to }: InstructionBatch,
  deps: GenerateInstructionsDeps,
): Promise<BatchResult> {
  const { calls, made } = await makeInstructionCalls(state, deps, { prompts, from, to });
  calls.checkLosses();
  const keys = runKeys(state.runId, state.progress.iteration + 1).instructionBatch(batch);
  const result: BatchResult = { batch, ...stageResult(keys.candidates, calls, made) };
  await deps.objects.put(keys.candidates, toJsonLines(made.candidates), 'application/jsonl');
  await deps.objects.put(keys.raw, calls.toJsonLines(), 'application/jsonl');
  // Last: a batch whose result is stored has stored its candidates and calls.
  await deps.objects.put(keys.result, JSON.stringify(result), 'application/json');
  return result;
}

/** An object a batch must have stored. */
async function required(objects: ObjectStore, key: string): Promise<string> {
  const text = await objects.getText(key);
  if (text === undefined) throw new IterationIncomplete(`instruction batch object ${key} is missing`);
  return text;
}

/**
 * "Collect instructions": the batches' candidates and raw calls joined in batch order under the
 * iteration's keys, and the stage's result, summed over the batches.
 */
export async function collectInstructions(
  state: RunState,
  batches: readonly InstructionBatch[],
  { objects, pool }: Pick<GenerateInstructionsDeps, 'objects' | 'pool'>,
): Promise<GenerateInstructionsResult> {
  const { runId, progress } = state;
  await holdPool(pool, state);
  const keys = runKeys(runId, progress.iteration + 1);
  const read = await Promise.all(
    batches.map(async ({ batch }) => {
      const batchKeys = keys.instructionBatch(batch);
      const result = JSON.parse(await required(objects, batchKeys.result)) as BatchResult;
      const [candidates, raw] = await Promise.all([
        required(objects, batchKeys.candidates),
        required(objects, batchKeys.raw),
      ]);
      return { result, candidates, raw };
    }),
  );
  // Each batch's JSON Lines end with a newline (or are empty): joined as they are.
  await objects.put(keys.candidates, read.map((b) => b.candidates).join(''), 'application/jsonl');
  await objects.put(keys.raw('generate-instructions'), read.map((b) => b.raw).join(''), 'application/jsonl');
  const sum = (
    field: 'prompts' | 'candidates' | 'malformed' | 'droppedByTruncation' | 'lost' | 'notRecorded',
  ) => read.reduce((total, b) => total + b.result[field], 0);
  return {
    candidatesKey: keys.candidates,
    prompts: sum('prompts'),
    candidates: sum('candidates'),
    malformed: sum('malformed'),
    droppedByTruncation: sum('droppedByTruncation'),
    lost: sum('lost'),
    notRecorded: sum('notRecorded'),
    usage: read.reduce<UsageByStage>((usage, b) => addUsageByStage(usage, b.result.usage), {}),
  };
}

/** The stage's entry: the step `instructions.phase` names, or all of the iteration's calls in one go. */
export function runInstructionsStep(
  input: InstructionsInput,
  deps: GenerateInstructionsDeps,
): Promise<InstructionPlan | BatchResult | GenerateInstructionsResult> {
  const { instructions, ...state } = input;
  switch (instructions?.phase) {
    case 'plan':
      return planInstructions(state, deps);
    case 'batch':
      return generateInstructionBatch(state, instructions.prompts, instructions.batch, deps);
    case 'collect':
      return collectInstructions(state, instructions.batches, deps);
    default:
      return generateInstructions(state, deps);
  }
}
