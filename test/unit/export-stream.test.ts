import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportDataset } from '../../functions/export/core.ts';
import { gatherPoolFiles, POOL_FILES, readPoolFile } from '../../functions/export/pool-files.ts';
import {
  EXPORT_SIZED_FOR_TASKS,
  ephemeralStorageMbFor,
  SPILL_BYTES_PER_TASK,
  spillLimitBytes,
} from '../../functions/export/spill-size.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { ExportTooLarge } from '../../functions/shared/errors.ts';
import { toJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys } from '../../functions/shared/keys.ts';
import { taskId } from '../../functions/shared/pool-ids.ts';
import type { PoolTask } from '../../functions/shared/ports.ts';
import { createRng } from '../../functions/shared/random.ts';
import { STAGES } from '../../functions/stages.ts';
import { materializedExport } from '../support/export-files.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from './fakes.ts';

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

/** Puts `TMPDIR` back as a test found it: unset when it was (assigning undefined would set "undefined"). */
function restoreTmpdir(tmp: string | undefined): void {
  if (tmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = tmp;
}

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

describe('the export’s temporary space', () => {
  it('sizes /tmp for the spill × headroom plus a reserve, in steps of 512 MB, never below the free 512 MB', () => {
    // 1,000,000 × 700 B × 1.5 = 1,001 MiB, + 64 MiB reserve = 1,065 MiB → 1,536 MB
    expect(ephemeralStorageMbFor(1_000_000, { bytesPerTask: 700, headroom: 1.5 })).toBe(1536);
    expect(ephemeralStorageMbFor(10_000, { bytesPerTask: 700, headroom: 1.5 })).toBe(512);
    // 400 MiB + 64 MiB = 464 MiB fits the free 512; 448 MiB + 64 = 512 MiB exactly, still 512
    expect(ephemeralStorageMbFor(400 * 1024 * 1024, { bytesPerTask: 1, headroom: 1 })).toBe(512);
    expect(ephemeralStorageMbFor(448 * 1024 * 1024 + 1, { bytesPerTask: 1, headroom: 1 })).toBe(1024);
    expect(() => ephemeralStorageMbFor(10_000_000, { bytesPerTask: 1500, headroom: 1.5 })).toThrow(
      /over Lambda's 10240 MB/,
    );
  });

  it('gives "Export dataset" room for a pool of 1,000,000 tasks, which the free 512 MB would not hold', () => {
    const spill = EXPORT_SIZED_FOR_TASKS * SPILL_BYTES_PER_TASK;
    expect(EXPORT_SIZED_FOR_TASKS).toBe(1_000_000);
    expect(spill).toBeGreaterThan(spillLimitBytes(512));
    expect(spillLimitBytes(STAGES.exportDataset.ephemeralStorageMb)).toBeGreaterThan(spill * 1.4);
    expect(STAGES.exportDataset.ephemeralStorageMb).toBeLessThanOrEqual(10_240);
  });

  it('stops with ExportTooLarge naming the limit when the spill would cross it, and leaves nothing on disk', async () => {
    const spillRoot = mkdtempSync(path.join(tmpdir(), 'export-limit-'));
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = spillRoot;
    try {
      const gathering = gatherPoolFiles(pages(pool(400)), { memoryChars: 2_000, spillLimitBytes: 4_000 });
      await expect(gathering).rejects.toThrow(ExportTooLarge);
      await expect(gathering).rejects.toThrow(
        /gzipped, over the spill limit of 0 MiB \(the function's ephemeral storage\).*up to 10,240 MB/,
      );
      expect(readdirSync(spillRoot)).toEqual([]);
    } finally {
      restoreTmpdir(tmp);
      rmSync(spillRoot, { recursive: true, force: true });
    }
  });

  it('spills up to the limit and no further: the same files when they fit it', async () => {
    const items = pool(400);
    const files = await gatherPoolFiles(pages(items), { memoryChars: 2_000, spillLimitBytes: 1024 * 1024 });
    try {
      expect(files.spilledBytes).toBeGreaterThan(4_000);
      expect(files.spilledBytes).toBeLessThanOrEqual(1024 * 1024);
      expect(await readPoolFile(files, 'dataset')).toBe(materialized(items).dataset);
    } finally {
      await files.dispose();
    }
  });
});

describe('the export stage', () => {
  let spillRoot: string;
  const tmp = process.env.TMPDIR;
  beforeEach(() => {
    // The spilled text goes to the system's temporary folder (the Lambda's /tmp): this test's own.
    spillRoot = mkdtempSync(path.join(tmpdir(), 'export-stage-'));
    process.env.TMPDIR = spillRoot;
  });
  afterEach(() => {
    restoreTmpdir(tmp);
    rmSync(spillRoot, { recursive: true, force: true });
  });

  it('writes the same files on a retry after a failed write, and leaves no spilled text behind either time', async () => {
    const objects = new MemoryObjects();
    const store = new MemoryPool();
    await objects.put('seeds/p/seeds.jsonl', toJsonLines(SEED_TASKS));
    const state = await prepareRun(
      { runId: 'run-x', input: { pool: 'p', seedKey: 'seeds/p/seeds.jsonl', target: 10 } },
      { objects, pool: store },
    );
    const tasks = pool(300).map((task) => ({ ...task, pool: 'p' }));
    for (const task of tasks) store.tasks.set(`p/${task.id}`, task);
    const keys = exportKeys('run-x');
    let failures = 1;
    const failing = Object.assign(Object.create(objects) as MemoryObjects, {
      async upload(key: string, body: AsyncIterable<string | Uint8Array>) {
        if (key === keys.alpaca && failures-- > 0) throw new Error('S3 unavailable');
        return objects.upload(key, body);
      },
    });

    await expect(
      exportDataset(state, { objects: failing, pool: store }, { memoryChars: 5_000 }),
    ).rejects.toThrow('S3 unavailable');
    expect(readdirSync(spillRoot)).toEqual([]);
    const summary = await exportDataset(state, { objects: failing, pool: store }, { memoryChars: 5_000 });
    expect(readdirSync(spillRoot)).toEqual([]);

    const expected = materialized([...(await collect(store.listTasks('p')))]);
    expect(await objects.getText(keys.dataset)).toBe(expected.dataset);
    expect(await objects.getText(keys.alpaca)).toBe(expected.alpaca);
    expect(await objects.getText(keys.tasks)).toBe(expected.tasks);
    expect(summary).toMatchObject({
      exportedTasks: expected.taskCount,
      exportedRecords: expected.recordCount,
    });
    expect(expected.taskCount).toBeGreaterThan(200);
  });
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
