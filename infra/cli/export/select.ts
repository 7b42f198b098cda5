/** Which tasks an export holds, and the train/validation split, both deterministic. */

import {
  type ExportOptions,
  ExportOptionsInvalid,
  type Split,
} from '../../../functions/shared/exports/schemas.ts';
import { createRng } from '../../../functions/shared/random.ts';
import type { TaskLine } from '../../../functions/shared/records.ts';

/** The tasks kept, and how many were left out and why. */
export interface Selection {
  /** Machine tasks first (in source order), then seed tasks when included. */
  tasks: TaskLine[];
  machineTasks: number;
  seedTasks: number;
  /** Machine tasks left out by `minQuality`: below the threshold, or without a score. */
  belowQuality: number;
  unscored: number;
}

/**
 * Keeps the machine tasks, only those with `quality_score ≥ minQuality` when set, and the seed tasks when
 * `includeSeeds`. Seed tasks are written by people and never scored, so `minQuality` leaves them alone.
 * A threshold on machine tasks none of which has a score is an error, not an empty export.
 */
export function selectTasks(
  { machine, seeds }: { machine: readonly TaskLine[]; seeds: readonly TaskLine[] },
  { includeSeeds, minQuality }: Pick<ExportOptions, 'includeSeeds' | 'minQuality'>,
): Selection {
  let kept = [...machine];
  let belowQuality = 0;
  let unscored = 0;
  if (minQuality !== undefined) {
    const scored = machine.filter((task) => task.quality_score !== undefined);
    if (machine.length > 0 && scored.length === 0) {
      throw new ExportOptionsInvalid(
        `--min-quality ${minQuality}: none of the ${machine.length} machine tasks has a quality_score ` +
          '(made with judgeModel "none", or before the judge), so the filter would export nothing; leave --min-quality out',
      );
    }
    kept = scored.filter((task) => (task.quality_score as number) >= minQuality);
    unscored = machine.length - scored.length;
    belowQuality = scored.length - kept.length;
  }
  const seedTasks = includeSeeds ? [...seeds] : [];
  return {
    tasks: [...kept, ...seedTasks],
    machineTasks: kept.length,
    seedTasks: seedTasks.length,
    belowQuality,
    unscored,
  };
}

/**
 * How many of `n` tasks go to validation: `fraction` of them, rounded, and never all of them (the
 * training split keeps at least one task).
 */
export function validationSize(n: number, fraction: number): number {
  if (n < 2 || fraction <= 0) return 0;
  return Math.min(n - 1, Math.round(n * fraction));
}

/**
 * Splits tasks (not records, so a task's instances never straddle the split): the task ids, sorted so the
 * input order does not matter, are shuffled with a generator seeded by `seed`, and the first
 * `validationSize` go to validation. Both splits keep the input order. Tasks are identified by id; a
 * repeated id follows its first occurrence.
 */
export function splitTasks<T extends Pick<TaskLine, 'id'>>(
  tasks: readonly T[],
  { validation, splitSeed }: Pick<ExportOptions, 'validation' | 'splitSeed'>,
): Record<Split, T[]> {
  const ids = [...new Set(tasks.map((task) => task.id))].sort();
  const held = new Set(createRng(splitSeed).shuffle(ids).slice(0, validationSize(ids.length, validation)));
  return {
    train: tasks.filter((task) => !held.has(task.id)),
    validation: tasks.filter((task) => held.has(task.id)),
  };
}
