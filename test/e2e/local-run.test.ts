/**
 * End to end: the synthesized state machine runs on the local stack (local S3 and DynamoDB servers,
 * the same handler modules) for two iterations; then everything it stored is read back with the
 * real SDK clients and checked against the run's summary.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HISTORY_EVENTS, PAYLOAD_BYTES } from '../../functions/shared/execution-limits.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys, poolKeys, runKeys } from '../../functions/shared/keys.ts';
import type { PoolTask } from '../../functions/shared/ports.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import { type LocalRunResult, runLocal } from '../../infra/cli/run.ts';
import { localHistory, statusFromHistory } from '../../infra/cli/status.ts';
import { MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, profileHistory, project } from '../../infra/local/history.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { materializedExport } from '../support/export-files.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-e2e-'));
const dataDir = path.join(work, 'data');
const seedCount = readFileSync('seeds/seed_tasks.jsonl', 'utf8').trim().split('\n').length;
let first: LocalRunResult;
let second: LocalRunResult;

// Two iterations of six calls each: the target is out of reach, so the iteration cap stops the run.
const options = {
  dataDir,
  out: path.join(work, 'out'),
  pool: 'e2e',
  iterations: '2',
  target: '1000',
  promptsPerIteration: '6',
};

beforeAll(async () => {
  first = await runLocal({ ...options, fresh: true }, () => {});
  second = await runLocal({ ...options, iterations: '1' }, () => {});
}, 240_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a local run of two iterations', () => {
  it('succeeds and stops at the iteration cap', () => {
    expect(first.status, `${first.error}: ${first.cause}`).toBe('SUCCEEDED');
    const summary = first.summary as RunSummary;
    expect(summary.iterations).toBe(2);
    expect(summary.stopReason).toMatch(/^iteration cap reached/);
    expect(summary.counts.prompts).toBe(12);
    expect(summary.added).toBeGreaterThan(0);
  });

  it('stores in S3 and DynamoDB exactly what its summary reports', async () => {
    const summary = first.summary as RunSummary;
    const stack = await LocalStack.start({ dataDir });
    try {
      const tasks: PoolTask[] = [];
      for await (const task of stack.pool.listTasks('e2e')) tasks.push(task);
      const seeds = tasks.filter((task) => task.source === 'seed');
      const ofFirstRun = tasks.filter((task) => task.runId === summary.runId && task.source === 'machine');
      const complete = ofFirstRun.filter((task) => task.status === 'complete');

      // DynamoDB: one item per seed, one per accepted instruction; the run record's counters agree.
      expect(seeds).toHaveLength(seedCount);
      expect(complete).toHaveLength(summary.added);
      expect(ofFirstRun).toHaveLength(summary.counts.accepted ?? -1);
      expect(ofFirstRun.filter((task) => task.status === 'rejected')).toHaveLength(
        summary.counts.rejected ?? 0,
      );
      expect(ofFirstRun.every((task) => task.status !== 'pending')).toBe(true);
      for (const task of complete) {
        expect(task.instances.length).toBeGreaterThan(0);
        expect(task.instances.length).toBeLessThanOrEqual(5);
      }
      const run = await stack.pool.getRun(summary.runId);
      expect(run?.status).toBe('SUCCEEDED');
      expect(run?.counts?.complete).toBe(summary.added);
      expect(run?.usage?.calls).toBe(summary.usage.calls);

      // S3: snapshots of each iteration add up to the run's tasks; the gate log has a line per candidate.
      let snapshotted = 0;
      let decisions = 0;
      for (let i = 1; i <= summary.iterations; i++) {
        snapshotted += fromJsonLines(
          await stack.objects.getText(poolKeys('e2e').snapshot(summary.runId, i)),
        ).length;
        decisions += fromJsonLines(await stack.objects.getText(runKeys(summary.runId, i).gate)).length;
        const raw = fromJsonLines<{ stage: string }>(
          await stack.objects.getText(runKeys(summary.runId, i).raw('generate-instructions')),
        );
        expect(raw.length).toBeGreaterThan(0);
      }
      expect(snapshotted).toBe(summary.added);
      expect(decisions).toBe(summary.counts.generated);

      // The export holds every machine task of the pool (only this run's, on a fresh pool).
      const keys = exportKeys(summary.runId);
      const records = fromJsonLines<{ instruction: string; input: string; output: string }>(
        await stack.objects.getText(keys.dataset),
      );
      const exported = fromJsonLines(await stack.objects.getText(keys.tasks));
      const alpaca = JSON.parse((await stack.objects.getText(keys.alpaca)) ?? '[]') as unknown[];
      expect(exported).toHaveLength(summary.exportedTasks);
      expect(summary.exportedTasks).toBe(summary.added);
      expect(records).toHaveLength(summary.exportedRecords);
      expect(alpaca).toHaveLength(summary.exportedRecords);
      expect(records.reduce((sum, r) => sum + (r.output.length > 0 ? 1 : 0), 0)).toBe(records.length);
    } finally {
      await stack.close();
    }
  });

  it('writes the export streamed byte for byte as it was built whole before, for a pool of two runs', async () => {
    const stack = await LocalStack.start({ dataDir });
    try {
      const tasks: PoolTask[] = [];
      for await (const task of stack.pool.listTasks('e2e')) tasks.push(task);
      const keys = exportKeys(second.runId);
      const expected = materializedExport(tasks);
      expect(new Set(tasks.map((task) => task.runId)).size).toBe(2);
      expect(await stack.objects.getText(keys.dataset)).toBe(expected.dataset);
      expect(await stack.objects.getText(keys.alpaca)).toBe(expected.alpaca);
      expect(await stack.objects.getText(keys.tasks)).toBe(expected.tasks);
      // And copied to the output folder as they are.
      const dir = second.outDir as string;
      expect(readFileSync(path.join(dir, 'dataset.jsonl'), 'utf8')).toBe(expected.dataset);
      expect(readFileSync(path.join(dir, 'alpaca.json'), 'utf8')).toBe(expected.alpaca);
      expect(readFileSync(path.join(dir, 'tasks.jsonl'), 'utf8')).toBe(expected.tasks);
    } finally {
      await stack.close();
    }
  });

  it('copies the dataset to the output folder', () => {
    const dir = first.outDir as string;
    const lines = readFileSync(path.join(dir, 'dataset.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength((first.summary as RunSummary).exportedRecords);
    expect(JSON.parse(readFileSync(path.join(dir, 'alpaca.json'), 'utf8'))).toHaveLength(lines.length);
  });

  it('leaves a history that `status` reads with the same numbers as the summary', async () => {
    const summary = first.summary as RunSummary;
    const status = statusFromHistory(first.runId, await localHistory(dataDir, first.runId).history());
    expect(status.status).toBe('SUCCEEDED');
    expect(status.iteration).toBe(2);
    expect(status.added).toBe(summary.added);
    expect(status.counts.complete).toBe(summary.counts.complete);
    expect(status.counts.generated).toBe(summary.counts.generated);
    expect(status.poolSize).toBe(summary.poolSize);
    expect(status.costUsd).toBeGreaterThan(0);
  });

  it('grows the same pool on a later run', () => {
    expect(second.status, `${second.error}: ${second.cause}`).toBe('SUCCEEDED');
    const a = first.summary as RunSummary;
    const b = second.summary as RunSummary;
    expect(b.poolSize).toBe(a.poolSize + b.added);
    expect(b.exportedTasks).toBe(a.exportedTasks + b.added);
  });

  it('fits Step Functions limits when extrapolated to a 52,000-task run', async () => {
    const profile = profileHistory(await localHistory(dataDir, first.runId).history());
    expect(profile.iterations).toBe((first.summary as RunSummary).iterations);
    expect(profile.chunks).toBeGreaterThan(0);
    // The Map items are child executions: none of their events is the parent's, each child has its own.
    expect(profile.eventsPerChunk).toBe(0);
    expect(profile.childEvents).toBeGreaterThanOrEqual(7);
    const summary = first.summary as RunSummary;
    const completeRate = (summary.counts.complete ?? 0) / (summary.counts.accepted ?? 1);
    // A large run: the adaptive sizing's cap of 200 calls × ~10 tasks per call, all accepted (worst case).
    const projection = project(profile, {
      tasks: 52_000,
      idsPerIteration: 2_000,
      completeRate,
      chunkSize: 40,
    });
    console.info('52k projection', JSON.stringify({ profile, projection }));
    // What "Prepare run" plans with (execution-limits.ts) is at least what this run measured.
    expect(profile.fixedEvents).toBeLessThanOrEqual(HISTORY_EVENTS.once);
    expect(profile.eventsPerIteration).toBeLessThanOrEqual(HISTORY_EVENTS.perIteration);
    expect(profile.eventsPerChunk).toBeLessThanOrEqual(HISTORY_EVENTS.perMapItem);
    expect(profile.childEvents).toBeLessThanOrEqual(HISTORY_EVENTS.perChildExecution);
    // Per id, its share of its Map item's result included (Map items of the default 40 ids).
    expect(profile.payloadBytesPerId).toBeLessThanOrEqual(
      PAYLOAD_BYTES.perAcceptedId + PAYLOAD_BYTES.perMapItem / 40,
    );
    expect(profile.payloadBaseBytes).toBeLessThanOrEqual(PAYLOAD_BYTES.base);
    expect(projection.events).toBeLessThan(MAX_HISTORY_EVENTS);
    expect(projection.largestPayloadBytes).toBeLessThan(MAX_PAYLOAD_BYTES);
  });
});
