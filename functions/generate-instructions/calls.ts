/**
 * What every method's "Generate instructions" shares around its calls: the runner (the run's sampling,
 * the iteration's ledger scope) and, once the calls are made, the losses checked, the candidates and raw
 * calls stored, and the stage's result.
 */
import { toJsonLines } from '../shared/json-lines.ts';
import type { runKeys } from '../shared/keys.ts';
import { INSTRUCTIONS_SCOPE, ModelCalls } from '../shared/model-calls.ts';
import type { ObjectStore } from '../shared/ports.ts';
import type { Candidate, RunState } from '../shared/schemas.ts';
import type { GenerateInstructionsDeps, GenerateInstructionsResult } from './core.ts';

/** The runner of this iteration's instruction calls. */
export function instructionCalls(
  { runId, config, progress }: RunState,
  { pool, model, remainingMs }: Omit<GenerateInstructionsDeps, 'objects'>,
): ModelCalls {
  return new ModelCalls(model, {
    sampling: config,
    ledger: { pool, runId, iteration: progress.iteration + 1, scope: INSTRUCTIONS_SCOPE },
    concurrency: config.callConcurrency,
    remainingMs,
  });
}

/**
 * Throws when too many calls were lost (`checkLosses`), else stores the candidates and the raw calls
 * under the iteration's keys and returns the stage's result.
 */
export async function storeCandidates(
  objects: ObjectStore,
  keys: ReturnType<typeof runKeys>,
  calls: ModelCalls,
  made: {
    prompts: number;
    candidates: readonly (Candidate & { call: number })[];
    malformed: number;
    droppedByTruncation: number;
  },
): Promise<GenerateInstructionsResult> {
  calls.checkLosses();
  await objects.put(keys.candidates, toJsonLines(made.candidates), 'application/jsonl');
  await objects.put(keys.raw('generate-instructions'), calls.toJsonLines(), 'application/jsonl');
  return stageResult(keys.candidates, calls, made);
}

/** The stage's result for candidates stored at `candidatesKey`: their counts and the calls' usage. */
export function stageResult(
  candidatesKey: string,
  calls: ModelCalls,
  made: Parameters<typeof storeCandidates>[3],
): GenerateInstructionsResult {
  return {
    candidatesKey,
    prompts: made.prompts,
    candidates: made.candidates.length,
    malformed: made.malformed,
    droppedByTruncation: made.droppedByTruncation,
    lost: calls.lost,
    notRecorded: calls.notRecorded.size,
    usage: calls.usage,
  };
}
