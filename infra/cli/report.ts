/**
 * `selfinstruct report <run>`: builds a run's report from the local stack (its S3 objects and DynamoDB
 * run record), stores it in the bucket next to the export, and writes `report.html` and `stats.json` to
 * `<out>/<run>/`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import type { ObjectStore, PoolStore } from '../../functions/shared/ports.ts';
import type { RunReport } from './report/report.ts';

/** The command's options: where the report is written, where the local stack keeps its data. */
export interface ReportOptions {
  out: string;
  dataDir: string;
}

/** The written files and the report. */
export interface LocalReport {
  report: RunReport;
  files: { html: string; stats: string };
}

/**
 * Builds the report of `runId` from a bucket and a pool table (it also stores it in the bucket) and
 * writes `report.html` and `stats.json` to `<out>/<runId>/`. `npm start` calls it at the end of a run.
 */
export async function writeReport(
  objects: ObjectStore,
  pool: PoolStore,
  runId: string,
  out: string,
): Promise<LocalReport> {
  const { buildReport } = await import('./report/report.ts');
  const report = await buildReport(objects, pool, runId);
  const dir = path.resolve(out, runId);
  mkdirSync(dir, { recursive: true });
  const files = { html: path.join(dir, 'report.html'), stats: path.join(dir, 'stats.json') };
  writeFileSync(files.html, report.html);
  writeFileSync(files.stats, `${JSON.stringify(report.stats, null, 2)}\n`);
  return { report, files };
}

/** Builds the report of `runId` from a local data folder (no synthesis) and writes it to `<out>/<runId>/`. */
export async function reportLocal(runId: string, { out, dataDir }: ReportOptions): Promise<LocalReport> {
  const { openLocalData } = await import('../local/data.ts');
  const opening = openLocalData(dataDir, `report ${runId}`, 'run `npm start` first');
  // The report's modules load while the servers start (`writeReport` finds them loaded).
  const loading = import('./report/report.ts');
  loading.catch(() => undefined);
  const data = await opening;
  try {
    await loading;
    return await writeReport(data.objects, data.pool, runId, out);
  } finally {
    await data.close();
  }
}

/** A path relative to the working directory when it is inside it. */
export function shown(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

/** `report <run> [--out <dir>] [--data-dir <dir>]`, for `program()` in main.ts. */
export function reportCommand(): Command {
  return new Command('report')
    .argument('<run>', 'run id, as printed by `run` (the folder name under out/)')
    .option('--out <dir>', 'the report goes to <dir>/<run>/', 'out')
    .option('--data-dir <dir>', 'local S3/DynamoDB data', '.local/data')
    .action(async (runId: string, options: ReportOptions) => {
      const { report, files } = await reportLocal(runId, options);
      const { totals } = report.stats;
      console.log(
        `Report of ${runId}: ${totals.added} tasks added in ${totals.iterations} iterations, ${totals.generated} candidates`,
      );
      console.log(`  ${shown(files.html)}`);
      console.log(`  ${shown(files.stats)}`);
      console.log(`  and in the bucket: ${report.keys.html}, ${report.keys.stats}`);
    });
}
