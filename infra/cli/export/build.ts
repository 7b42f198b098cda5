/**
 * Datasets in the formats people train with: pure functions from the tasks of a run or a pool to the
 * files of an export (`jsonl`, `alpaca`, `messages`, `bedrock`; train and validation splits) and its
 * dataset card. `readTasks` reads the tasks from the bucket; `buildExport` makes the files; the
 * `selfinstruct export` command writes them.
 */

import {
  FORMATS,
  renderRecordChunks,
  reservedKeywordRecords,
  toRecords,
} from '../../../functions/shared/exports/formats.ts';
import {
  ExportOptions,
  type ExportOptionsInput,
  ExportOptionsInvalid,
  type JsonlRecord,
  NothingToExport,
  SPLITS,
  type Split,
} from '../../../functions/shared/exports/schemas.ts';
import { type CardFile, renderCard } from './card.ts';
import { type Selection, selectTasks, splitTasks, validationSize } from './select.ts';
import type { TaskSource } from './sources.ts';
import type { SelectionVectors } from './vectors.ts';

/** A file of the export: a path relative to the output folder and its text. */
export interface ExportFile {
  path: string;
  /** Its text in chunks, rendered as they are read (each call starts again): what the command writes. */
  chunks(): Iterable<string>;
  /** Its whole text (`chunks` joined). */
  readonly content: string;
  /** The data files carry their format, split and record count; the card has none. */
  data?: CardFile;
}

/** Everything an export writes, and what it counted on the way. */
export interface BuiltExport {
  options: ExportOptions;
  /** The data files, then `README.md`. */
  files: ExportFile[];
  counts: Record<Split, { tasks: number; records: number }>;
  selection: Selection;
  /** Instances left out because their output is empty (no format can train on them). */
  emptyOutputs: number;
  /** Things the user should know, also listed in the card's limitations. */
  warnings: string[];
}

/** The validated options, or `ExportOptionsInvalid` naming each bad value. */
export function parseExportOptions(input: ExportOptionsInput): ExportOptions {
  const result = ExportOptions.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${flag(issue.path)}: ${issue.message}`);
    throw new ExportOptionsInvalid(`invalid export options: ${problems.join('; ')}`);
  }
  return { ...result.data, formats: [...new Set(result.data.formats)] };
}

/** The `export` command's flag for an option path (`splitSeed` → `--split-seed`, `formats.0` → `--format`). */
function flag(path: readonly PropertyKey[]): string {
  const key = String(path[0] ?? 'options');
  return key === 'formats' ? '--format' : `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Where a data file goes: `<split>.<ext>` for one format, `<format>/<split>.<ext>` for several. */
export function dataPath(format: CardFile['format'], split: Split, formats: number): string {
  const name = `${split}.${FORMATS[format].ext}`;
  return formats === 1 ? name : `${format}/${name}`;
}

/**
 * Builds an export of `source`: selects the tasks (`includeSeeds`, `minQuality`, and `select` with the
 * candidates' `vectors`), splits them by task with the seeded shuffle, writes each split in each format,
 * and the dataset card. Throws `ExportOptionsInvalid` for bad options and `NothingToExport` when no
 * record is left.
 */
export function buildExport(
  source: TaskSource,
  input: ExportOptionsInput = {},
  vectors?: SelectionVectors,
): BuiltExport {
  const options = parseExportOptions(input);
  const selection = selectTasks({ machine: source.tasks, seeds: source.seeds }, options, vectors);
  if (selection.tasks.length === 0) {
    const what = source.kind === 'run' ? `run ${source.name}` : `pool ${source.name}`;
    throw new NothingToExport(
      `nothing to export: ${what} has no ${options.minQuality === undefined ? '' : 'selected '}machine tasks` +
        (options.includeSeeds ? ' and no seed tasks' : ' (--include-seeds exports the seed tasks too)'),
    );
  }

  const bySplit = splitTasks(selection.tasks, options);
  // A split's records are made again from its tasks each time they are read, never held all at once.
  const recordsOf = function* (split: Split): Generator<JsonlRecord> {
    for (const task of bySplit[split]) {
      for (const record of toRecords(task)) if (record.output.trim() !== '') yield record;
    }
  };
  let emptyOutputs = 0;
  let reserved = 0;
  const examples: JsonlRecord[] = [];
  const counts = {} as BuiltExport['counts'];
  for (const split of SPLITS) {
    const tasks = new Set<string>();
    let records = 0;
    for (const task of bySplit[split]) {
      const all = toRecords(task);
      const kept = all.filter((record) => record.output.trim() !== '');
      emptyOutputs += all.length - kept.length;
      records += kept.length;
      for (const record of kept) tasks.add(record.task_id);
      if (options.formats.includes('bedrock')) reserved += reservedKeywordRecords(kept, options);
      // The card's examples: the first record of each of the first three training tasks.
      const first = kept[0];
      if (
        split === 'train' &&
        first &&
        examples.length < 3 &&
        !examples.some((e) => e.task_id === first.task_id)
      ) {
        examples.push(first);
      }
    }
    counts[split] = { tasks: tasks.size, records };
  }
  if (counts.train.records === 0) {
    throw new NothingToExport('nothing to export: every selected instance has an empty output');
  }

  const warnings: string[] = [];
  const picked = selection.picked;
  if (picked && picked.written < picked.asked) {
    warnings.push(
      `--select ${picked.asked}: only ${picked.written} tasks written: of the ${picked.candidates} candidates, ` +
        `${picked.tooClose} were closer than cosine ${picked.threshold} to a selected one.`,
    );
  }
  const models = new Set(source.runs.flatMap((run) => (run.summary ? [run.summary.model] : [])));
  if (models.has('offline')) {
    warnings.push(
      'Generated by the offline stand-in model: for trying the pipeline, not for training a model.',
    );
  }
  const ids = new Set(selection.tasks.map((task) => task.id));
  if (options.validation > 0 && validationSize(ids.size, options.validation) === 0) {
    warnings.push(
      `${ids.size} tasks are too few for a validation split of ${options.validation}: no validation file.`,
    );
  }
  if (options.formats.includes('bedrock')) {
    if (reserved > 0) {
      warnings.push(
        `${reserved} bedrock records start their prompt with a keyword Amazon Nova reserves (User:, Bot:, ` +
          'Assistant:, System:, <image>, <video>, [EOS]): a Nova fine-tuning job may reject them.',
      );
    }
  }

  const files: ExportFile[] = [];
  for (const format of options.formats) {
    for (const split of SPLITS) {
      if (counts[split].records === 0) continue;
      const path = dataPath(format, split, options.formats.length);
      files.push(
        exportFile(path, () => renderRecordChunks(format, recordsOf(split), options), {
          path,
          format,
          split,
          records: counts[split].records,
        }),
      );
    }
  }
  const card = renderCard({
    source,
    options,
    selection,
    counts,
    files: files.flatMap((file) => (file.data ? [file.data] : [])),
    examples,
    emptyOutputs,
    warnings,
  });
  files.push(exportFile('README.md', () => [card]));
  return { options, files, counts, selection, emptyOutputs, warnings };
}

function exportFile(path: string, chunks: () => Iterable<string>, data?: CardFile): ExportFile {
  return {
    path,
    chunks,
    get content() {
      return [...chunks()].join('');
    },
    ...(data ? { data } : {}),
  };
}
