/**
 * `selfinstruct seeds validate <file>`: checks a seed file exactly as the "Prepare run" stage reads it
 * (`parseSeedFile`: strict UTF-8, size limits, duplicate ids), before it is uploaded, and says what a run would take from it.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { parseSeedFile, type SeedFileFormat } from '../../functions/shared/input-files.ts';
import { taskId } from '../../functions/shared/pool-ids.ts';

/** What a valid seed file holds. */
export interface SeedFileSummary {
  format: SeedFileFormat;
  tasks: number;
  classification: number;
  instances: number;
  /** Tasks whose instruction an earlier task of the file already has: a pool adds them once. */
  repeated: number;
}

/** Validates a seed file's bytes as the prepare stage does (throws `SeedFileInvalid`) and summarizes it. */
export function validateSeedFile(bytes: Uint8Array, file: string): SeedFileSummary {
  const { format, tasks } = parseSeedFile(bytes, file);
  return {
    format,
    tasks: tasks.length,
    classification: tasks.filter((task) => task.is_classification).length,
    instances: tasks.reduce((sum, task) => sum + task.instances.length, 0),
    repeated: tasks.length - new Set(tasks.map((task) => taskId(task.instruction))).size,
  };
}

/** One line: what a run would take from the file. */
export function formatSeedFileSummary(file: string, s: SeedFileSummary): string {
  const kind =
    s.format === 'Alpaca JSON'
      ? `${s.tasks} records, each a seed task with its one instance (classification left to the model)`
      : `${s.tasks} seed tasks (${s.classification} classification), ${s.instances} instances`;
  const repeated =
    s.repeated === 0 ? '' : `; ${s.repeated} repeat an earlier task's instruction and are added once`;
  return `${file}: valid ${s.format}: ${kind}${repeated}`;
}

/** `seeds validate <file>`, for `program()` in main.ts. */
export function seedsCommand(): Command {
  const seeds = new Command('seeds');
  seeds
    .command('validate <file>')
    .description(
      'Check a seed file (Self-Instruct JSON Lines or Alpaca JSON) as a run would, listing every problem with its line',
    )
    .action(async (file: string) => {
      const summary = validateSeedFile(readFileSync(file), file);
      console.log(formatSeedFileSummary(file, summary));
    });
  return seeds;
}
