/**
 * `selfinstruct import <pool> <file>…`: brings the outputs of the original tools (Self-Instruct's
 * machine_generated_instructions / machine_generated_instances with is_clf_or_not, Stanford Alpaca's JSON
 * arrays) and this project's own `tasks.jsonl` into a pool of the local stack's data folder, so that a
 * later run grows it and `export --pool` writes it. Each file is recognised by its content; every file is
 * read and checked before anything is written (`import/plan.ts`), then the tasks are written as the stages
 * write theirs (`import/apply.ts`). Opens the data folder without synthesizing (no CDK).
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { NotFound } from '../../functions/shared/errors.ts';
import { PoolName } from '../../functions/shared/schemas.ts';
import { formatEntries, groupCounts } from './counts.ts';
import { applyImport, type ImportResult } from './import/apply.ts';
import { IMPORT_FORMATS } from './import/formats.ts';
import { type ImportPlan, planImport } from './import/plan.ts';

/** The command's options, as commander parses them. */
export interface ImportCommandOptions {
  seeds?: string;
  gate?: boolean;
  rougeThreshold?: number;
  seed: string;
  dataDir: string;
}

/** A new import's id: `import-<UTC time>-<4 random characters>`, in the form of run ids. */
export function newImportId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `import-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * Imports `files` into `pool` of the local data folder `dataDir`: plans the whole import from the files
 * (a bad file stops it here, before the data folder is even opened), then writes it.
 */
export async function importLocal(
  pool: string,
  files: readonly string[],
  options: ImportCommandOptions,
): Promise<{ plan: ImportPlan; result: ImportResult }> {
  const name = PoolName.safeParse(pool);
  if (!name.success) throw new NotFound(`No pool "${pool}": pool names ${name.error.issues[0]?.message}`);
  const read = (file: string) => ({ file, bytes: readFileSync(file) });
  const plan = planImport(files.map(read), {
    seeds: options.seeds === undefined ? undefined : read(options.seeds),
    seed: options.seed,
  });
  const { openLocalData } = await import('../local/data.ts');
  const importId = newImportId();
  const data = await openLocalData(
    options.dataDir,
    `import ${importId}`,
    'run the pipeline once (npm start) to create the local stack’s bucket and table',
  );
  try {
    const result = await applyImport(
      plan,
      { pool, importId, gate: options.gate ?? false, rougeThreshold: options.rougeThreshold },
      // One process at a time opens a data folder: a run holding the pool's lease now is dead.
      { objects: data.objects, pool: data.pool, ended: async () => true },
    );
    return { plan, result };
  } finally {
    await data.close();
  }
}

/** What the command prints: the files as recognised, and what the pool got. */
export function formatImport(plan: ImportPlan, result: ImportResult): string {
  const lines = [`Imported into pool "${result.pool}" as ${result.importId}:`];
  for (const file of plan.files) {
    lines.push(`  ${file.file}: ${IMPORT_FORMATS[file.format].label}, ${file.records} records`);
  }
  if (plan.seedsFile) lines.push(`  ${plan.seedsFile}: seed file, ${plan.seeds.length} tasks`);
  const {
    read = 0,
    complete = 0,
    rejected = 0,
    seeds = 0,
    duplicate = 0,
    rouge = 0,
    ...rest
  } = result.counts;
  lines.push(
    `  ${read} records read as ${plan.tasks.length} tasks: ${complete} added with instances, ${rejected} kept out of the dataset, ` +
      `${duplicate} duplicates${result.decisionsKey ? `, ${rouge} rejected by ROUGE-L` : ''}` +
      (seeds > 0 ? `; ${seeds} seed tasks added` : ''),
  );
  const grouped = groupCounts(rest);
  // `no-instances` (an instructions file's lines) is grouped with the instruction reasons.
  if (rejected > 0) lines.push(`  kept out: ${formatEntries([...grouped.tasks, ...grouped.instructions])}`);
  if (grouped.instances.length > 0) lines.push(`  instances dropped: ${formatEntries(grouped.instances)}`);
  if (grouped.replies.length > 0) lines.push(`  unreadable: ${formatEntries(grouped.replies)}`);
  lines.push(`  pool "${result.pool}": ${result.poolSize} tasks; snapshot ${result.snapshotKey}`);
  return `${lines.join('\n')}\n`;
}

/** The `import` command, for the main CLI. */
export function importCommand(io: { stdout: { write(text: string): unknown } } = process): Command {
  return new Command('import')
    .argument('<pool>', 'the pool to import into (created when it does not exist)')
    .argument('<files...>', 'files to import, each recognised by its content')
    .option(
      '--seeds <file>',
      'a seed file (Self-Instruct JSON Lines or Alpaca JSON) for the pool’s seed tasks',
    )
    .option('--gate', 'gate the tasks with ROUGE-L in file order against the pool, as a run gates candidates')
    .option('--rouge-threshold <x>', 'with --gate: reject above this ROUGE-L F (default 0.7)', parseThreshold)
    .option('--seed <seed>', 'seed of the draw of 5 instances among more (Self-Instruct instances)', '123')
    .option('--data-dir <dir>', 'local S3/DynamoDB data', '.local/data')
    .action(async (pool: string, files: string[], options: ImportCommandOptions) => {
      if (options.rougeThreshold !== undefined && !options.gate) {
        throw new InvalidArgumentError('--rouge-threshold needs --gate');
      }
      const { plan, result } = await importLocal(pool, files, options);
      io.stdout.write(formatImport(plan, result));
    });
}

function parseThreshold(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !(number >= 0 && number <= 1))
    throw new InvalidArgumentError('expected a number from 0 to 1');
  return number;
}
