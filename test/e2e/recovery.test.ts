/**
 * What a dead run leaves in a pool never counts, on the local stack (real DynamoDB and S3 servers, the
 * synthesized state machine): a run that fails in "Generate instances" leaves its iteration's tasks
 * staged and pending; `repair` (or the next run's "Prepare run") removes them, and the pool's count
 * equals its complete tasks again; the next run exports no task of the dead run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys } from '../../functions/shared/keys.ts';
import { describeRepair, repairPool } from '../../functions/shared/pool-commit.ts';
import type { PoolTask } from '../../functions/shared/ports.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import { repairLocal } from '../../infra/cli/repair.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { type RecordedRequest, type StandIn, startOpenAIStandIn } from '../support/model-servers.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-recovery-'));
const dataDir = path.join(work, 'data');
let stack: LocalStack;
let standIn: StandIn;
/** While true, the stand-in refuses instance requests with a 401: the run fails in "Generate instances". */
let refuseInstances = true;
let closed = false;

const asksForInstances = (request: RecordedRequest) =>
  JSON.stringify(request.body?.messages ?? '').includes('instances');
const small = { target: 1000, maxIterations: 1, promptsPerIteration: 3, chunkSize: 5 };

/** What the pool holds: committed tasks by status, staged ones, and the count on its META item. */
async function pool(name: string) {
  const committed: PoolTask[] = [];
  for await (const task of stack.pool.listTasks(name)) committed.push(task);
  const staged = [];
  for await (const task of stack.pool.listStaged(name)) staged.push(task);
  return {
    complete: committed.filter((task) => task.status === 'complete').length,
    pending:
      committed.filter((task) => task.status === 'pending').length +
      staged.filter((t) => t.status === 'pending').length,
    staged: staged.length,
    count: await stack.pool.countComplete(name),
  };
}

beforeAll(async () => {
  process.env.SELFINSTRUCT_RETRY_BASE_MS = '5';
  process.env.SELFINSTRUCT_RETRY_MAX_MS = '50';
  standIn = await startOpenAIStandIn({
    fault: (request) => (refuseInstances && asksForInstances(request) ? { status: 401 } : undefined),
  });
  stack = await LocalStack.start({
    dataDir,
    fresh: true,
    context: { 'selfinstruct:allowedModelEndpoints': [standIn.url] },
  });
}, 60_000);

afterAll(async () => {
  if (!closed) await stack.close();
  await standIn.close();
  rmSync(work, { recursive: true, force: true });
});

describe('a pool a run died in', () => {
  it('is repaired: the dead iteration’s tasks removed, the count equal to the complete tasks, exports clean', async () => {
    const model = `openai-compatible:stand-in-chat@${standIn.url}`;
    refuseInstances = true;
    const dead = await stack.execute({ ...small, pool: 'r', model }, { retryIntervalMs: 10 });
    expect(dead.status).toBe('FAILED');
    expect(dead.error).toBe('ModelRequestFailed');
    const left = await pool('r');
    // The seeds committed; the iteration's accepted tasks are staged, pending, and not counted.
    expect(left.staged).toBeGreaterThan(0);
    expect(left.pending).toBe(left.staged);
    expect(left.count).toBe(left.complete);

    const repaired = await repairPool(stack.pool, stack.objects, 'r', {
      by: 'repair-test',
      ended: async () => true,
    });
    expect(describeRepair(repaired)).toEqual([
      `${left.staged} tasks of iterations that never committed removed (${left.staged} pending), from run ${dead.executionName}`,
    ]);
    expect(await pool('r')).toEqual({ complete: left.complete, pending: 0, staged: 0, count: left.complete });
    // Nothing more to do the second time.
    expect(
      describeRepair(
        await repairPool(stack.pool, stack.objects, 'r', { by: 'again', ended: async () => true }),
      ),
    ).toEqual([]);

    refuseInstances = false;
    const next = await stack.execute({ ...small, pool: 'r', model }, { retryIntervalMs: 10 });
    expect(next.status, String(next.cause)).toBe('SUCCEEDED');
    const summary = next.output as RunSummary;
    const after = await pool('r');
    expect(after).toEqual({
      complete: left.complete + summary.added,
      pending: 0,
      staged: 0,
      count: left.complete + summary.added,
    });
    const exported = fromJsonLines<{ run_id: string }>(
      await stack.objects.getText(exportKeys(summary.runId).tasks),
    );
    expect(exported).toHaveLength(summary.added);
    expect(exported.every((task) => task.run_id === summary.runId)).toBe(true);
  }, 180_000);

  it('is repaired by the next run on it, which says so on its run record', async () => {
    const model = `openai-compatible:stand-in-chat@${standIn.url}`;
    refuseInstances = true;
    const dead = await stack.execute({ ...small, pool: 's', model }, { retryIntervalMs: 10 });
    expect(dead.status).toBe('FAILED');
    const left = await pool('s');
    expect(left.staged).toBeGreaterThan(0);

    refuseInstances = false;
    const next = await stack.execute({ ...small, pool: 's', model }, { retryIntervalMs: 10 });
    expect(next.status, String(next.cause)).toBe('SUCCEEDED');
    const summary = next.output as RunSummary;
    expect((await stack.pool.getRun(summary.runId))?.repaired).toEqual([
      `${left.staged} tasks of iterations that never committed removed (${left.staged} pending), from run ${dead.executionName}`,
    ]);
    expect(await pool('s')).toEqual({
      complete: left.complete + summary.added,
      pending: 0,
      staged: 0,
      count: left.complete + summary.added,
    });
  }, 180_000);
});

describe('the repair command', () => {
  it('says there is nothing to repair in a clean pool, and names a pool that does not exist', async () => {
    await stack.close();
    closed = true;
    expect(describeRepair(await repairLocal('r', dataDir))).toEqual([]);
    await expect(repairLocal('nope', dataDir)).rejects.toThrow('No pool "nope" in this stack');
  }, 120_000);
});
