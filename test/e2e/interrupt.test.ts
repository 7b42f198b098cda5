/**
 * A local run interrupted in the middle of "Generate instances": Ctrl-C (SIGINT) aborts it the way
 * StopExecution would (history ends with ExecutionAborted, the run is marked ABORTED, its pool's lease
 * is given back, so `watch` ends and the next run may start); SIGKILL kills the process outright, leaving
 * a history without an end: the next process on the data folder ends it as AWS ends an execution that
 * fails (history, status-change event, "Record failure"), and the next run repairs what it left.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, paginateQuery } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys } from '../../functions/shared/keys.ts';
import { localHistory, statusFromHistory } from '../../infra/cli/status.ts';
import { ABANDONED_ERROR, LocalStack } from '../../infra/local/stack.ts';
import { interruptRun } from '../support/kill-run.ts';

/** Every task item of a pool as stored, staged or not (the adapter's reads show committed work only). */
async function poolItems(stack: LocalStack, pool: string) {
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient(awsClientConfig('dynamodb')));
  const items: { status: string; staged?: string; runId?: string; source: string }[] = [];
  for await (const page of paginateQuery(
    { client: doc },
    {
      TableName: stack.tableName,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :task)',
      ExpressionAttributeValues: { ':pk': `POOL#${pool}`, ':task': 'TASK#' },
    },
  )) {
    items.push(...((page.Items ?? []) as typeof items));
  }
  return items;
}

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-interrupt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
// Several Map items, each slow enough to be interrupted in the middle.
const args = ['--pool', 'p', '--target', '200', '--iterations', '1', '--prompts-per-iteration', '4'];
args.push('--chunk-size', '5', '--concurrency', '2');

describe('a local run interrupted in the middle of "Generate instances"', () => {
  it('by Ctrl-C is aborted: history, run record and pool lease say so', async () => {
    const dataDir = path.join(work, 'sigint');
    const run = await interruptRun(dataDir, ['--fresh', ...args], { signal: 'SIGINT' });
    expect(run.exitCode, run.stderr).toBe(130);
    expect(run.stderr).toMatch(/aborted/);
    expect(run.history.at(-1)?.type).toBe('ExecutionAborted');
    expect(statusFromHistory(run.runId, await localHistory(dataDir, run.runId).history()).status).toBe(
      'ABORTED',
    );
    const stack = await LocalStack.start({ dataDir });
    try {
      expect(await stack.pool.getRun(run.runId)).toMatchObject({ status: 'ABORTED' });
      // Its lease is given back: the next run takes the pool at once.
      expect((await stack.pool.getMeta('p'))?.lease).toBeUndefined();
    } finally {
      await stack.close();
    }
  }, 300_000);

  it('by SIGKILL dies at once; the next run on the pool recovers it, and nothing it left is counted or exported', async () => {
    const dataDir = path.join(work, 'sigkill');
    const dead = await interruptRun(dataDir, ['--fresh', ...args]);
    expect(dead.signal).toBe('SIGKILL');
    const types = dead.history.map((event) => event.type);
    expect(types).toContain('MapIterationStarted');
    expect(types.filter((type) => type?.startsWith('Execution') && type !== 'ExecutionStarted')).toEqual([]);

    const stack = await LocalStack.start({ dataDir });
    try {
      // Ended when the folder was opened again: FAILED, in its history and its run record; pool given back.
      expect(stack.abandoned).toEqual([
        {
          executionName: dead.runId,
          deliveries: [expect.objectContaining({ functionName: expect.any(String) })],
        },
      ]);
      expect(stack.abandoned[0]?.deliveries[0]?.error).toBeUndefined();
      const ended = statusFromHistory(dead.runId, await localHistory(dataDir, dead.runId).history());
      expect(ended).toMatchObject({ status: 'FAILED', error: ABANDONED_ERROR });
      expect(await stack.pool.getRun(dead.runId)).toMatchObject({ status: 'FAILED', error: ABANDONED_ERROR });
      expect((await stack.pool.getMeta('p'))?.lease).toBeUndefined();
      // What the dead run left in the pool: the staged tasks of its iteration that never committed.
      const left = await poolItems(stack, 'p');
      expect(left.filter((task) => task.staged?.startsWith(`${dead.runId}#`)).length).toBeGreaterThan(0);

      const next = await stack.execute({ pool: 'p', target: 20, maxIterations: 1, promptsPerIteration: 4 });
      expect(next.status, `${next.error}: ${next.cause}`).toBe('SUCCEEDED');
      expect((await stack.pool.getRun(next.executionName))?.repaired?.length).toBeGreaterThan(0);

      const tasks = await poolItems(stack, 'p');
      const committed = tasks.filter((task) => task.staged === undefined);
      expect(tasks.filter((task) => task.staged !== undefined)).toEqual([]);
      expect(tasks.filter((task) => task.status === 'pending')).toEqual([]);
      // The dead run's only commit is its seeds (iteration 0): none of its machine tasks is in the pool.
      expect(committed.filter((task) => task.runId === dead.runId && task.source === 'machine')).toEqual([]);
      expect(await stack.pool.countComplete('p')).toBe(
        committed.filter((task) => task.status === 'complete').length,
      );
      const exported = fromJsonLines<{ run_id?: string }>(
        await stack.objects.getText(exportKeys(next.executionName).tasks),
      );
      expect(exported.length).toBeGreaterThan(0);
      expect(exported.filter((task) => task.run_id === dead.runId)).toEqual([]);
    } finally {
      await stack.close();
    }
  }, 400_000);
});
