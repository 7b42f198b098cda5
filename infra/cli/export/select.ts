/** Which tasks an export holds, and the train/validation split, both deterministic. */

import { normalized, VectorIndex } from '../../../functions/shared/engine/vector-index.ts';
import {
  type ExportOptions,
  ExportOptionsInvalid,
  NothingToExport,
  type Split,
} from '../../../functions/shared/exports/schemas.ts';
import { formatUsd as usd } from '../../../functions/shared/pricing/money.ts';
import { createRng } from '../../../functions/shared/random.ts';
import type { TaskLine } from '../../../functions/shared/records.ts';
import type { SelectionVectors } from './vectors.ts';

/** The tasks kept, and how many were left out and why. */
export interface Selection {
  /** Machine tasks first (in source order), then seed tasks when included. */
  tasks: TaskLine[];
  machineTasks: number;
  seedTasks: number;
  /** Machine tasks left out by `minQuality`: below the threshold, or without a score. */
  belowQuality: number;
  unscored: number;
  /** How `select` picked the machine tasks, when it was asked to. */
  picked?: Picked;
}

/** What `select` did: asked, candidates, written, skipped as too close, and the vectors it compared. */
export interface Picked {
  asked: number;
  /** Machine tasks it chose from (those `minQuality` kept). */
  candidates: number;
  written: number;
  /** Candidates skipped because their cosine to a task picked before them is above `threshold`. */
  tooClose: number;
  threshold: number;
  vectors: Omit<SelectionVectors, 'vectors'>;
}

/** The order `select` walks the candidates in (`bySelectionOrder`), for the card and the README. */
export const SELECTION_ORDER =
  'quality_score descending (unscored last), then the number of the three audit answers that are yes ' +
  '(instruction valid, input appropriate, output correct) descending, then task id ascending';

const yeses = (task: TaskLine) =>
  [task.instruction_valid, task.input_appropriate, task.output_correct].filter((answer) => answer === true)
    .length;

/** Compares two tasks in `SELECTION_ORDER`: the better first; never 0 for two different ids. */
export function bySelectionOrder(a: TaskLine, b: TaskLine): number {
  const score = (task: TaskLine) => task.quality_score ?? Number.NEGATIVE_INFINITY;
  return score(b) - score(a) || yeses(b) - yeses(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * DEITA's score-first, diversity-aware selection (Liu et al., 2023, "What Makes Good Data for
 * Alignment?", its `Combined_Filter`): walks `candidates` in `SELECTION_ORDER` and picks each whose
 * cosine to every task picked before it is at most `threshold` (a strictly higher one is skipped as too
 * close), until `n` are picked or the candidates run out. `vectorOf` gives a task's embedding. Returns
 * the picked tasks in `candidates`' order and how many were skipped on the way.
 */
export function pickDiverse<T extends TaskLine>(
  candidates: readonly T[],
  vectorOf: (task: T) => ArrayLike<number>,
  { n, threshold }: { n: number; threshold: number },
): { picked: T[]; tooClose: number } {
  let index: VectorIndex | undefined;
  const picked = new Set<T>();
  let tooClose = 0;
  for (const task of [...candidates].sort(bySelectionOrder)) {
    if (picked.size >= n) break;
    const vector = normalized(vectorOf(task));
    index ??= new VectorIndex('selection', vector.length);
    // The nearest picked task by cosine (-Infinity while none is picked).
    const [nearest] = index.nearest([vector]);
    if (nearest !== undefined && nearest.score > threshold) {
      tooClose++;
      continue;
    }
    index.add(task.id, vector);
    picked.add(task);
  }
  return { picked: candidates.filter((task) => picked.has(task)), tooClose };
}

/**
 * The machine tasks `minQuality` keeps (all of them without it), and how many it left out. A threshold
 * on machine tasks none of which has a score is an error, not an empty export.
 */
export function qualityCandidates(
  machine: readonly TaskLine[],
  { minQuality }: Pick<ExportOptions, 'minQuality'>,
): { kept: TaskLine[]; belowQuality: number; unscored: number } {
  if (minQuality === undefined) return { kept: [...machine], belowQuality: 0, unscored: 0 };
  const scored = machine.filter((task) => task.quality_score !== undefined);
  if (machine.length > 0 && scored.length === 0) {
    throw new ExportOptionsInvalid(
      `--min-quality ${minQuality}: none of the ${machine.length} machine tasks has a quality_score ` +
        '(made with judgeModel "none", or before the judge), so the filter would export nothing; leave --min-quality out',
    );
  }
  const kept = scored.filter((task) => (task.quality_score as number) >= minQuality);
  return { kept, belowQuality: scored.length - kept.length, unscored: machine.length - scored.length };
}

/**
 * Keeps the machine tasks, only those with `quality_score ≥ minQuality` when set, then, with `select`,
 * the `select` of them `pickDiverse` picks with `vectors` (the candidates' embeddings, by instruction);
 * and the seed tasks when `includeSeeds`. Seed tasks are written by people and never scored, so neither
 * `minQuality` nor `select` applies to them. `select` with no candidate at all is `NothingToExport`.
 */
export function selectTasks(
  { machine, seeds }: { machine: readonly TaskLine[]; seeds: readonly TaskLine[] },
  options: Pick<ExportOptions, 'includeSeeds' | 'minQuality' | 'select' | 'selectThreshold'>,
  vectors?: SelectionVectors,
): Selection {
  const { kept, belowQuality, unscored } = qualityCandidates(machine, options);
  let tasks = kept;
  let picked: Picked | undefined;
  if (options.select !== undefined) {
    if (kept.length === 0) {
      throw new NothingToExport(
        `--select ${options.select}: no machine task to select from` +
          (options.minQuality === undefined ? '' : ` (none scored ≥ ${options.minQuality})`),
      );
    }
    if (vectors === undefined) throw new TypeError('select needs the candidates’ vectors');
    const { picked: chosen, tooClose } = pickDiverse(kept, (task) => vectorFor(vectors, task), {
      n: options.select,
      threshold: options.selectThreshold,
    });
    tasks = chosen;
    const { vectors: _, ...about } = vectors;
    picked = {
      asked: options.select,
      candidates: kept.length,
      written: chosen.length,
      tooClose,
      threshold: options.selectThreshold,
      vectors: about,
    };
  }
  const seedTasks = options.includeSeeds ? [...seeds] : [];
  return {
    tasks: [...tasks, ...seedTasks],
    machineTasks: tasks.length,
    seedTasks: seedTasks.length,
    belowQuality,
    unscored,
    ...(picked ? { picked } : {}),
  };
}

function vectorFor(vectors: SelectionVectors, task: TaskLine): Float32Array {
  const vector = vectors.vectors.get(task.instruction);
  if (vector === undefined) throw new TypeError(`no vector for task ${task.id}`);
  return vector;
}

/**
 * What `--select` did, in two lines (also the card's): the tasks picked of the candidates and asked, and
 * where their vectors came from, with the billed embedding calls and their cost.
 */
export function describePicked(picked: Picked): string[] {
  const { vectors } = picked;
  const priced = vectors.costUsd === undefined ? 'no price in the table' : usd(vectors.costUsd);
  return [
    `selected ${picked.written} of ${picked.candidates} candidates (asked ${picked.asked}): best quality_score ` +
      `first, ${picked.tooClose} skipped as closer than cosine ${picked.threshold} to a selected one`,
    `vectors by ${vectors.model}: ${vectors.reused} from the pool's stored vectors` +
      (vectors.storedKey ? ` (${vectors.storedKey})` : '') +
      `, ${vectors.embedded} embedded now (${vectors.usage.calls} billed calls, ` +
      `${vectors.usage.inputTokens} tokens${vectors.usage.estimated ? ' (estimated)' : ''}, ${priced})`,
  ];
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
