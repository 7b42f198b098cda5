import { describe, expect, it } from 'vitest';
import { gatherPoolFiles, POOL_FILES, readPoolFile } from '../../functions/export/pool-files.ts';
import { taskId } from '../../functions/shared/pool-ids.ts';
import type { PoolTask } from '../../functions/shared/ports.ts';
import { createRng } from '../../functions/shared/random.ts';
import { materializedExport } from '../support/export-files.ts';

/** Tasks of several runs and iterations, in id order as the query returns them; seeds and rejected ones among them. */
function pool(n: number): PoolTask[] {
  const rng = createRng('export');
  const tasks = Array.from({ length: n }, (_, i): PoolTask => {
    const instruction = `Task number ${i}: say "hi"\nthen stop.`;
    const kind = rng.int(10);
    return {
      id: taskId(instruction),
      pool: 'p',
      instruction,
      source: kind === 0 ? 'seed' : 'machine',
      status: kind === 1 ? 'rejected' : 'complete',
      instances: Array.from({ length: 1 + rng.int(3) }, (_, j) => ({
        input: j ? `in ${j}\n"q"` : '',
        output: `out ${i}.${j}`,
      })),
      isClassification: rng.int(2) === 0,
      runId: ['run-b', 'run-a', 'run-c'][rng.int(3)],
      iteration: 1 + rng.int(4),
      createdAt: '',
    };
  });
  return tasks.sort((a, b) => a.id.localeCompare(b.id));
}

const materialized = materializedExport;

async function* pages(items: readonly PoolTask[]) {
  for (const item of items) yield item;
}

/** The files gathered with at most `memoryChars` of text in memory, read back whole. */
async function streamed(items: readonly PoolTask[], memoryChars?: number) {
  const files = await gatherPoolFiles(pages(items), { memoryChars });
  try {
    const [dataset, alpaca, tasks] = await Promise.all(POOL_FILES.map((file) => readPoolFile(files, file)));
    return {
      files: { dataset, alpaca, tasks, taskCount: files.taskCount, recordCount: files.recordCount },
      spilled: files.spilled,
    };
  } finally {
    await files.dispose();
  }
}

describe('the streamed export', () => {
  it('writes the same files, byte for byte, as sorting the whole pool did', async () => {
    const items = pool(400);
    const { files, spilled } = await streamed(items);
    expect(files).toEqual(materialized(items));
    expect(spilled).toBe(false);
    expect(files.taskCount).toBeGreaterThan(250);
  });

  it('writes the same files when most of the text went to disk on the way, in many gzip members', async () => {
    const items = pool(400);
    // A few tasks' text at a time: hundreds of spills, every group's files written in many pieces.
    const { files, spilled } = await streamed(items, 2_000);
    expect(spilled).toBe(true);
    expect(files).toEqual(materialized(items));
  });

  it('keeps text in other scripts whole across the spilled chunks', async () => {
    const items = pool(60).map((task, i) => ({
      ...task,
      instruction: `${'日本語の指示、ü ✓ 🙂 '.repeat(1 + (i % 7))}${task.instruction}`,
    }));
    const { files, spilled } = await streamed(items, 500);
    expect(spilled).toBe(true);
    expect(files).toEqual(materialized(items));
  });

  it('writes an empty pool as the same empty files', async () => {
    expect((await streamed([])).files).toEqual(materialized([]));
  });
});
