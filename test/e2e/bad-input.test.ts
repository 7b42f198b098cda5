/**
 * Bad input stops a run in "Prepare run", before any model call, with an error that names what is
 * wrong; the pool is left as it was.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableCause } from '../../functions/record-failure/core.ts';
import { poolKeys } from '../../functions/shared/keys.ts';
import { LocalStack } from '../../infra/local/stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-bad-'));
let stack: LocalStack;

const goodTask = {
  id: 'seed_task_0',
  name: 'sum-numbers',
  instruction: 'Add up the numbers in the list and give the total.',
  instances: [{ input: '1, 2, 3', output: '6' }],
  is_classification: false,
};
const line = (value: unknown) => JSON.stringify(value);

async function poolState(pool: string) {
  let tasks = 0;
  for await (const _ of stack.pool.listTasks(pool)) tasks++;
  return {
    tasks,
    seeds: await stack.objects.getText(poolKeys(pool).seeds),
    count: await stack.pool.countComplete(pool),
  };
}

async function runWithSeeds(name: string, text: string, extra: Record<string, unknown> = {}) {
  const key = `seeds/guarded/${name}`;
  await stack.objects.put(key, text);
  const result = await stack.execute({
    seedKey: key,
    promptsPerIteration: 2,
    target: 5,
    maxIterations: 1,
    ...extra,
  });
  const states = new Set(
    result.events.flatMap((event) =>
      'state' in event && event.type === 'StateEntered' ? [event.state.name] : [],
    ),
  );
  // The execution's cause is Lambda's JSON, as in AWS; the CLI shows its message.
  return { ...result, cause: readableCause(result.error ?? '', result.cause), states };
}

beforeAll(async () => {
  stack = await LocalStack.start({ dataDir: path.join(work, 'data'), fresh: true });
  // A pool that exists, so "untouched" means something.
  await stack.objects.put('seeds/guarded/good.jsonl', `${line(goodTask)}\n`);
  const ok = await stack.execute({
    seedKey: 'seeds/guarded/good.jsonl',
    target: 2,
    maxIterations: 1,
    promptsPerIteration: 1,
  });
  expect(ok.status, String(ok.cause)).toBe('SUCCEEDED');
}, 120_000);

afterAll(async () => {
  await stack.close();
  rmSync(work, { recursive: true, force: true });
});

describe('a run with bad input', () => {
  it.each([
    [
      'a line that is not JSON',
      'bad-json.jsonl',
      `${line(goodTask)}\n{"id": "seed_task_1", "name": oops}\n`,
      /bad-json\.jsonl:2: not valid JSON/,
    ],
    [
      'a task with a missing field',
      'missing-field.jsonl',
      `${line(goodTask)}\n${line({ ...goodTask, id: 'seed_task_1', instances: undefined })}\n`,
      /missing-field\.jsonl:2: instances: /,
    ],
    ['an empty file', 'empty.jsonl', '', /empty\.jsonl: the file is empty/],
  ])('stops before any model call on %s, naming the file, line and field', async (_, file, text, message) => {
    const before = await poolState('guarded');
    const result = await runWithSeeds(file, text);

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('SeedFileInvalid');
    expect(result.cause).toMatch(message);
    expect(result.states.has('Generate instructions')).toBe(false);
    expect(await poolState('guarded')).toEqual(before);
    const run = await stack.pool.getRun(result.executionName);
    expect(run?.status).toBe('FAILED');
  });

  it('stops on a seed file that does not exist', async () => {
    const result = await stack.execute({ seedKey: 'seeds/guarded/nope.jsonl' });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('NotFound');
    expect(result.cause).toContain('seeds/guarded/nope.jsonl');
  });

  it.each([
    ['a negative target', { target: -5 }, /target: /],
    ['an unknown field', { targte: 5 }, /Unrecognized key.*targte/],
    ['an unknown profile', { profile: 'gpt' }, /profile: /],
  ])('stops on a run input with %s, naming the field', async (_, input, message) => {
    const before = await poolState('guarded');
    const result = await stack.execute({ pool: 'guarded', ...input });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(message);
    expect(await poolState('guarded')).toEqual(before);
  });

  it('stops when another run is growing the pool, and gives the pool back after a run', async () => {
    const holder = await stack.pool.leasePool(
      'guarded',
      'another-run',
      new Date(Date.now() + 60_000),
      new Date(),
    );
    expect(holder.taken).toBe(true);
    const before = await poolState('guarded');
    const result = await stack.execute({
      pool: 'guarded',
      target: 5,
      maxIterations: 1,
      promptsPerIteration: 1,
    });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('PoolBusy');
    expect(result.cause).toMatch(/being grown by run another-run/);
    expect(await poolState('guarded')).toEqual(before);

    await stack.pool.releasePool('guarded', 'another-run');
    const ok = await stack.execute({ pool: 'guarded', target: 2, maxIterations: 1, promptsPerIteration: 1 });
    expect(ok.status, String(ok.cause)).toBe('SUCCEEDED');
    // Released at the end: a next run can take it at once.
    expect(
      (await stack.pool.leasePool('guarded', 'next-run', new Date(Date.now() + 1000), new Date())).taken,
    ).toBe(true);
  });
});
