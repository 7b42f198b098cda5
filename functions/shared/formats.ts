/** The dataset formats the pipeline writes: the seed-file format with provenance, flat records, Alpaca. */
import type { PoolTask } from './ports.ts';

/** A pool task in the original Self-Instruct seed-file format, plus its provenance. */
export function toSeedFormat(task: PoolTask) {
  return {
    id: task.id,
    name: task.name ?? task.id,
    instruction: task.instruction,
    instances: task.instances,
    is_classification: task.isClassification ?? false,
    source: task.source,
    run_id: task.runId,
    iteration: task.iteration,
    most_similar_instruction: task.mostSimilar?.instruction,
    most_similar_score: task.mostSimilar?.score,
    avg_similarity_score: task.avgSimilarity,
  };
}
export type SeedFormatTask = ReturnType<typeof toSeedFormat>;

/** One training record per instance: `instruction`, `input`, `output`, plus provenance. */
export function toRecords(task: SeedFormatTask) {
  return task.instances.map((instance) => ({
    instruction: task.instruction,
    input: instance.input,
    output: instance.output,
    task_id: task.id,
    is_classification: task.is_classification,
    source: task.source,
    run_id: task.run_id,
    iteration: task.iteration,
    most_similar_instruction: task.most_similar_instruction,
    most_similar_score: task.most_similar_score,
  }));
}

/** Alpaca's JSON format: an array of `{instruction, input, output}`. */
export const toAlpaca = (records: ReturnType<typeof toRecords>) =>
  records.map(({ instruction, input, output }) => ({ instruction, input, output }));
