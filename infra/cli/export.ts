/**
 * `selfinstruct export <name>`: a run's or a pool's tasks as training files (`jsonl`, `alpaca`,
 * `messages`, `bedrock`), split into train and validation by task, with a dataset card. Reads the bucket
 * only (the local stack's by default, a deployed one with `--bucket`), and with `--select` calls the run's
 * embedding model for the instructions the pool's stored vectors lack.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, rmdir } from 'node:fs/promises';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { S3ObjectStore } from '../../functions/shared/adapters/s3.ts';
import {
  EXPORT_FORMATS,
  type ExportFormat,
  type ExportOptionsInput,
  ExportOptionsInvalid,
  SPLITS,
} from '../../functions/shared/exports/schemas.ts';
import { type BuiltExport, buildExport, dataPath, parseExportOptions } from './export/build.ts';
import { CARD_MARKER } from './export/card.ts';
import { LocalFolder } from './export/local-folder.ts';
import { describePicked, qualityCandidates } from './export/select.ts';
import { readTasks, type SourceBucket, type SourceRef, type TaskSource } from './export/sources.ts';
import type { SelectionVectorsOptions } from './export/vectors.ts';

/** What to export, how, and where to write it. */
export interface ExportRequest extends ExportOptionsInput {
  source: SourceRef;
  /** The folder to write into (created when missing). */
  outDir: string;
}

/** An export written to disk. */
export interface WrittenExport extends BuiltExport {
  source: TaskSource;
  outDir: string;
  /** Files removed because an earlier export in the same folder wrote them and this one did not. */
  removed: string[];
}

/**
 * Reads the tasks of a run or a pool from `objects` (any bucket: the local stack's, or a deployed one
 * through `S3ObjectStore`), with `select` the candidates' vectors (`selectionVectors`), builds the files
 * of each format and the card, and writes them into `outDir`. Export files of an earlier export there
 * that this one does not rewrite are removed, so the folder matches its card.
 */
export async function exportDataset(
  objects: SourceBucket,
  request: ExportRequest,
  vectorOptions?: SelectionVectorsOptions,
): Promise<WrittenExport> {
  const { source: ref, outDir, ...input } = request;
  const options = parseExportOptions(input); // before any read: a bad value fails fast
  const source = await readTasks(objects, ref);
  // Loaded only to select: the embedders and the offline word vectors are megabytes.
  const vectors =
    options.select === undefined
      ? undefined
      : await (await import('./export/vectors.ts')).selectionVectors(
          objects,
          source,
          qualityCandidates(source.tasks, options).kept,
          vectorOptions,
        );
  const built = buildExport(source, options, vectors);
  const removed = await clearEarlierExport(outDir, new Set(built.files.map((file) => file.path)));
  // Each file rendered as it is written, as the stage streams its uploads: memory holds the tasks, not the files.
  const folder = new LocalFolder(outDir);
  for (const file of built.files) await folder.upload(file.path, file.chunks());
  return { ...built, source, outDir, removed };
}

/**
 * Removes the data files an earlier export wrote into `outDir` that `paths` won't replace, so the folder
 * matches its new card. A folder whose `README.md` is not an export's card is not ours: when it holds a
 * file the export would overwrite, the export stops instead.
 */
async function clearEarlierExport(outDir: string, paths: ReadonlySet<string>): Promise<string[]> {
  const card = await readFile(path.join(outDir, 'README.md'), 'utf8').catch(() => undefined);
  const candidates = EXPORT_FORMATS.flatMap((format) =>
    SPLITS.flatMap((split) => [dataPath(format, split, 1), dataPath(format, split, 2)]),
  );
  if (card === undefined || !card.includes(CARD_MARKER)) {
    const clashes = [];
    for (const file of [...paths]) if (existsSync(path.join(outDir, file))) clashes.push(file);
    if (clashes.length > 0) {
      throw new ExportOptionsInvalid(
        `${outDir} holds files that no earlier export wrote and this one would overwrite ` +
          `(${clashes.join(', ')}): choose another --out`,
      );
    }
    return [];
  }
  const removed: string[] = [];
  for (const file of candidates) {
    if (paths.has(file) || !existsSync(path.join(outDir, file))) continue;
    await rm(path.join(outDir, file));
    removed.push(file);
  }
  // The folders of formats no longer written, when that left them empty.
  for (const format of EXPORT_FORMATS) await rmdir(path.join(outDir, format)).catch(() => undefined);
  return removed;
}

/** Where the command writes: what it wrote (stdout) and warnings (stderr). */
export interface ExportIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** The command's options, as commander parses them. */
export interface ExportCommandOptions {
  pool?: boolean;
  format: ExportFormat | 'all';
  out?: string;
  validation: number;
  splitSeed: string;
  includeSeeds?: boolean;
  minQuality?: number;
  select?: number;
  selectThreshold?: number;
  system?: string;
  license?: string;
  dataDir: string;
  bucket?: string;
}

/** The `export` command, for the main CLI. */
export function exportCommand(io: ExportIo = process): Command {
  return new Command('export')
    .argument('<name>', 'run id, or pool name with --pool')
    .option('--pool', '<name> is a pool: export the tasks of every run that grew it')
    .addOption(
      new Option('--format <format>', 'the format to write, or all of them')
        .choices([...EXPORT_FORMATS, 'all'])
        .default('all'),
    )
    .option('--out <dir>', 'output folder (default: out/<name>)')
    .option(
      '--validation <fraction>',
      'fraction of the tasks held out for validation, 0 to 0.5 (0: no validation file)',
      parseFraction,
      0.1,
    )
    .option('--split-seed <seed>', 'seed of the shuffle that picks the validation tasks', '42')
    .option('--include-seeds', 'export the pool’s seed tasks too')
    .option(
      '--min-quality <score>',
      'only machine tasks the judge scored at least this (1–5); unscored tasks are left out',
      parseNumber,
    )
    .option(
      '--select <n>',
      'pick n machine tasks, best quality_score first, skipping one too close to a task already picked (DEITA)',
      parsePositiveInteger,
    )
    .option(
      '--select-threshold <cosine>',
      'with --select: skip a task whose cosine to a picked one is above this (default 0.9)',
      parseNumber,
    )
    .option('--system <text>', 'a system message for the messages and bedrock formats')
    .option(
      '--license <id>',
      'the data’s license for the card, a Hugging Face license id (cc-by-4.0, apache-2.0 …); default: other, not chosen',
    )
    .option('--data-dir <dir>', 'local S3/DynamoDB data', '.local/data')
    .addOption(
      new Option(
        '--bucket <name>',
        'read this deployed bucket (default AWS credentials and region) instead of the local stack',
      ).conflicts('dataDir'),
    )
    .action(async (name: string, options: ExportCommandOptions) => {
      const request: ExportRequest = {
        source: options.pool ? { pool: name } : { run: name },
        outDir: options.out ?? path.join('out', name),
        formats: options.format === 'all' ? [...EXPORT_FORMATS] : [options.format],
        validation: options.validation,
        splitSeed: options.splitSeed,
        includeSeeds: options.includeSeeds ?? false,
        minQuality: options.minQuality,
        select: options.select,
        selectThreshold: options.selectThreshold,
        system: options.system,
        license: options.license,
      };
      if (options.selectThreshold !== undefined && options.select === undefined) {
        throw new ExportOptionsInvalid('--select-threshold needs --select <n>');
      }
      parseExportOptions(request);
      const result = options.bucket
        ? await exportDataset(new S3ObjectStore(options.bucket), request)
        : await exportFromLocalStack(options.dataDir, request);
      io.stdout.write(formatExport(result));
      for (const warning of result.warnings) io.stderr.write(`warning: ${warning}\n`);
    });
}

/** Runs `exportDataset` on a local data folder's bucket (no synthesis: `openLocalData`). */
async function exportFromLocalStack(dataDir: string, request: ExportRequest): Promise<WrittenExport> {
  const { openLocalData } = await import('../local/data.ts');
  const data = await openLocalData(
    dataDir,
    'export',
    'run the pipeline first (npm start), or read a deployed bucket with --bucket <name>',
  );
  try {
    return await exportDataset(data.objects, request);
  } finally {
    await data.close();
  }
}

/** What the command prints: the source, the counts per split, and each file written. */
export function formatExport(result: WrittenExport): string {
  const { source, counts } = result;
  const what = source.kind === 'run' ? `run ${source.name} (pool ${source.pool})` : `pool ${source.name}`;
  const tasks = counts.train.tasks + counts.validation.tasks;
  const records = counts.train.records + counts.validation.records;
  const lines = [`Exported ${what}: ${tasks} tasks, ${records} records`];
  const seeds = result.selection.seedTasks;
  lines.push(`  ${result.selection.machineTasks} machine tasks${seeds > 0 ? `, ${seeds} seed tasks` : ''}`);
  const picked = result.selection.picked;
  if (picked) lines.push(...describePicked(picked).map((line) => `  ${line}`));
  for (const split of SPLITS) {
    if (counts[split].records === 0) continue;
    lines.push(`  ${split.padEnd(10)}  ${counts[split].tasks} tasks, ${counts[split].records} records`);
  }
  lines.push(`Wrote ${result.outDir}${path.sep}`);
  const width = Math.max(...result.files.map((file) => file.path.length));
  for (const file of result.files) {
    lines.push(
      `  ${file.path.padEnd(width)}  ${file.data ? `${file.data.records} records` : 'dataset card'}`,
    );
  }
  if (result.removed.length > 0)
    lines.push(`Removed files of an earlier export: ${result.removed.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

function parseNumber(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number)) throw new InvalidArgumentError('expected a number');
  return number;
}

function parsePositiveInteger(value: string): number {
  const number = parseNumber(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return number;
}

function parseFraction(value: string): number {
  const fraction = parseNumber(value);
  if (fraction < 0 || fraction > 0.5) throw new InvalidArgumentError('expected a number from 0 to 0.5');
  return fraction;
}
