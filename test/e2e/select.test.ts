/**
 * End to end, through the state machine on the local stack: a run with the offline model (judge and
 * near-duplicate gate on by default), then `export --select`: exactly the number asked, best scores
 * first, no two selected instructions closer than the threshold, the vectors read from the pool's stored
 * ones at no model cost; with `--min-quality 4`, only tasks scored 4 or more.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalized } from '../../functions/shared/engine/vector-index.ts';
import { OfflineEmbedder } from '../../functions/shared/models/embeddings.ts';
import { RunSummary, type TaskLine } from '../../functions/shared/records.ts';
import { bySelectionOrder } from '../../infra/cli/export/select.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { exportJsonl } from '../support/export-jsonl.ts';
import { exportedTasks } from '../support/local-stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-select-'));
let stack: LocalStack;
let summary: RunSummary;
let tasks: TaskLine[];

beforeAll(async () => {
  stack = await LocalStack.start({ dataDir: path.join(work, 'data'), fresh: true });
  const result = await stack.execute(
    { pool: 'selected', target: 150, maxIterations: 4, promptsPerIteration: 8 },
    { retryIntervalMs: 10 },
  );
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  summary = RunSummary.parse(result.output);
  tasks = await exportedTasks(stack, summary.runId);
}, 300_000);

afterAll(async () => {
  await stack?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Runs `export <run> …args` on the local bucket: what it wrote and printed, and the tasks selected. */
async function exportRun(name: string, args: string[]) {
  const out = path.join(work, name);
  const written = await exportJsonl({ runId: summary.runId, bucket: stack.bucketName, out }, args);
  return { ...written, selected: tasks.filter((task) => written.ids.has(task.id)) };
}

/** The cosine of two instructions by the offline embedder (the run's embedding model). */
async function cosines(instructions: string[]): Promise<Float32Array[]> {
  return (await new OfflineEmbedder().embed(instructions)).map((vector) => normalized(vector));
}
const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, i) => sum + x * (b[i] as number), 0);

/**
 * Checks what DEITA's walk promises of `selected`: no two of them closer than `threshold`, and every
 * task left out that ranks above the last one selected too close to a selected one (a float32 margin
 * either side). Returns how many were so passed over.
 */
async function passedOver(selected: TaskLine[], threshold: number): Promise<number> {
  const vectors = await cosines(selected.map((task) => task.instruction));
  for (let i = 0; i < vectors.length; i++) {
    for (let j = 0; j < i; j++) {
      expect(dot(vectors[i] as Float32Array, vectors[j] as Float32Array)).toBeLessThanOrEqual(
        threshold + 1e-6,
      );
    }
  }
  const chosen = new Set(selected);
  const last = selected.slice().sort(bySelectionOrder).at(-1) as TaskLine;
  const over = tasks.filter((task) => !chosen.has(task) && bySelectionOrder(task, last) < 0);
  for (const vector of await cosines(over.map((task) => task.instruction))) {
    expect(Math.max(...vectors.map((picked) => dot(vector, picked)))).toBeGreaterThan(threshold - 1e-6);
  }
  return over.length;
}

describe('export --select', { timeout: 240_000 }, () => {
  it('writes exactly the number asked, best scores first, none too close to another, from the pool’s vectors', async () => {
    expect(summary.config.embeddingModel).toBe('offline');
    expect(tasks.length).toBeGreaterThanOrEqual(100);
    const { selected, ids, stdout, stderr, card } = await exportRun('select-100', ['--select', '100']);

    expect(ids.size).toBe(100);
    expect(stderr).not.toMatch(/--select/);
    expect(stdout).toMatch(new RegExp(`selected 100 of ${tasks.length} candidates \\(asked 100\\)`));
    // Every vector came from the pool's stored ones: nothing embedded, nothing billed.
    expect(stdout).toMatch(
      new RegExp(
        `vectors by offline: ${tasks.length} from the pool's stored vectors \\(pools/selected/vectors/`,
      ),
    );
    expect(stdout).toMatch(/, 0 embedded now \(0 billed calls/);
    expect(card).toMatch(/\| asked \| 100 \|/);

    // No skip: the near-duplicate gate already let no pair above 0.9 into the pool.
    expect(stdout).toMatch(/0 skipped as closer than cosine 0\.9/);
    expect(await passedOver(selected, 0.9)).toBe(0);
    // The scores span a range, so the order mattered: the lowest selected beats the lowest overall.
    const scores = (list: TaskLine[]) => list.map((task) => task.quality_score ?? 0);
    expect(Math.min(...scores(selected))).toBeGreaterThan(Math.min(...scores(tasks)));
  });

  it('skips the tasks too close to one selected before them, and says so when fewer than asked survive', async () => {
    const { selected, ids, stdout, stderr, card } = await exportRun('select-close', [
      '--select',
      '100',
      '--select-threshold',
      '0.75',
    ]);
    const skipped = Number(/(\d+) skipped as closer than cosine 0\.75/.exec(stdout)?.[1]);
    expect(skipped).toBeGreaterThan(0);
    expect(card).toMatch(new RegExp(`\\| skipped as too close \\| ${skipped} \\|`));
    const over = await passedOver(selected, 0.75);
    if (ids.size === 100) {
      // Stopped at 100: every task it skipped ranks above the last one selected.
      expect(over).toBe(skipped);
    } else {
      // Walked every candidate: those it skipped are all that is missing.
      expect(over).toBeLessThanOrEqual(skipped);
      expect(ids.size).toBe(tasks.length - skipped);
      expect(stderr).toContain(`--select 100: only ${ids.size} tasks written`);
      expect(card).toContain(`only ${ids.size} tasks written`);
    }
  });

  it('with --min-quality 4, selects only among the tasks scored 4 or more', async () => {
    const eligible = tasks.filter((task) => (task.quality_score ?? 0) >= 4);
    const asked = Math.min(50, eligible.length);
    expect(asked).toBeGreaterThan(10);
    const { selected, ids, stdout } = await exportRun('select-quality', [
      '--min-quality',
      '4',
      '--select',
      String(asked),
    ]);
    expect(stdout).toMatch(new RegExp(`selected \\d+ of ${eligible.length} candidates \\(asked ${asked}\\)`));
    expect(ids.size).toBeGreaterThan(0);
    expect(ids.size).toBeLessThanOrEqual(asked);
    for (const task of selected) expect(task.quality_score).toBeGreaterThanOrEqual(4);
  });
});
