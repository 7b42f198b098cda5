/**
 * The `export` command as a user runs it, in-process, for the end-to-end tests: with any arguments
 * (`exportCli`), or one run's tasks in the `jsonl` format, no validation split, from the local stack's
 * bucket into a folder, parsed back (`exportJsonl`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseExportFile } from '../../functions/shared/exports/formats.ts';
import type { JsonlRecord } from '../../functions/shared/exports/schemas.ts';
import { exportCommand } from '../../infra/cli/export.ts';

/** What `export` wrote and printed. */
export interface ExportedJsonl extends Printed {
  records: JsonlRecord[];
  /** The ids of the tasks written. */
  ids: Set<string>;
  card: string;
}

/** What `export` printed. */
export interface Printed {
  stdout: string;
  stderr: string;
}

/** Runs `selfinstruct export …args` in-process and returns what it printed. */
export async function exportCli(...args: string[]): Promise<Printed> {
  const printed = { stdout: '', stderr: '' };
  const io = {
    stdout: { write: (text: string) => (printed.stdout += text) },
    stderr: { write: (text: string) => (printed.stderr += text) },
  };
  await exportCommand(io).exitOverride().parseAsync(args, { from: 'user' });
  return printed;
}

/** Runs `export <runId> …args --format jsonl --validation 0 --bucket <bucket> --out <out>`. */
export async function exportJsonl(
  { runId, bucket, out }: { runId: string; bucket: string; out: string },
  args: readonly string[],
): Promise<ExportedJsonl> {
  const where = ['--format', 'jsonl', '--validation', '0', '--bucket', bucket, '--out', out];
  const printed = await exportCli(runId, ...args, ...where);
  const records = readdirSync(out)
    .filter((file) => file.endsWith('.jsonl'))
    .flatMap(
      (file) => parseExportFile('jsonl', readFileSync(path.join(out, file), 'utf8'), file) as JsonlRecord[],
    );
  return {
    ...printed,
    records,
    ids: new Set(records.map((record) => record.task_id)),
    card: readFileSync(path.join(out, 'README.md'), 'utf8'),
  };
}
