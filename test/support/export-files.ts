/**
 * The export stage's files as it wrote them before they were streamed: every machine task of the pool,
 * sorted oldest first (run, then iteration, then the query's id order), then each file built whole.
 * The tests compare the streamed export with it byte for byte.
 */
import { toAlpaca, toRecords, toSeedFormat } from '../../functions/shared/exports/formats.ts';
import { toJsonLines } from '../../functions/shared/json-lines.ts';
import type { PoolTask } from '../../functions/shared/ports.ts';

/** `dataset.jsonl`, `alpaca.json` and `tasks.jsonl` of `items` (the pool query's, in id order). */
export function materializedExport(items: readonly PoolTask[]) {
  const tasks = items.filter((t) => t.source === 'machine' && t.status === 'complete').map(toSeedFormat);
  tasks.sort(
    (a, b) => (a.run_id ?? '').localeCompare(b.run_id ?? '') || (a.iteration ?? 0) - (b.iteration ?? 0),
  );
  const records = tasks.flatMap(toRecords);
  return {
    dataset: toJsonLines(records),
    alpaca: `${JSON.stringify(toAlpaca(records), null, 2)}\n`,
    tasks: toJsonLines(tasks),
    taskCount: tasks.length,
    recordCount: records.length,
  };
}
