/**
 * Bad input stops a run in "Prepare run", before any model call, with an error that names what is
 * wrong; the pool's DynamoDB items and S3 objects are left byte for byte as they were. And the bundled
 * seeds only ever seed a new pool.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableCause } from '../../functions/record-failure/core.ts';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { MAX_SEED_RECORD_BYTES } from '../../functions/shared/input-files.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { DEFAULT_SEED_KEY, poolKeys } from '../../functions/shared/keys.ts';
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

/** A hash of every DynamoDB item of the pool (tasks, META) and every S3 object under `pools/<pool>/`. */
async function poolState(pool: string) {
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient(awsClientConfig('dynamodb')));
  const items: unknown[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new QueryCommand({
        TableName: stack.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': `POOL#${pool}` },
        ExclusiveStartKey: startKey,
      }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  const objects = createHash('sha256');
  const keys = await stack.objects.list(`pools/${pool}/`);
  for (const key of keys) objects.update(key).update((await stack.objects.getBytes(key)) ?? new Uint8Array());
  return {
    items: items.length,
    itemsHash: createHash('sha256').update(JSON.stringify(items)).digest('hex'),
    objects: keys.length,
    objectsHash: objects.digest('hex'),
  };
}

async function runWithSeeds(name: string, text: string | Uint8Array, extra: Record<string, unknown> = {}) {
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
    [
      'a byte that is not UTF-8',
      'latin1.jsonl',
      Buffer.concat([
        Buffer.from(`${line(goodTask)}\n{"id": "caf`),
        Buffer.from([0xe9]),
        Buffer.from('"}\n'),
      ]),
      /latin1\.jsonl:2: not valid UTF-8 \(byte 0xe9 at byte 12 of the line\)/,
    ],
    [
      'a 10 MB line',
      'huge.jsonl',
      `${line(goodTask)}\n${line({ ...goodTask, id: 'seed_task_1', instruction: 'x'.repeat(10_000_000) })}\n`,
      new RegExp(
        `huge\\.jsonl:2: the record is 10000\\d{3} bytes, over the limit of ${MAX_SEED_RECORD_BYTES}`,
      ),
    ],
    [
      'a duplicate id',
      'dup.jsonl',
      `${line(goodTask)}\n${line({ ...goodTask, instruction: 'Multiply the numbers in the list.' })}\n`,
      /dup\.jsonl:2: id: duplicate id "seed_task_0" \(first on line 1\)/,
    ],
  ])('stops before any model call on %s, naming the file, line and field', async (_, file, text, message) => {
    const before = await poolState('guarded');
    const result = await runWithSeeds(file, text);

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('SeedFileInvalid');
    expect(result.cause).toMatch(message);
    expect(result.cause?.split('\n')).toHaveLength(2);
    expect(result.states.has('Plan instructions')).toBe(false);
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
    ['an unknown model', { model: 'gpt-4o' }, /model: Unknown model "gpt-4o": no provider prefix/],
    ['a seed that is too long', { seed: 'x'.repeat(300) }, /seed: Too big/],
  ])('stops on a run input with %s, naming the field', async (_, input, message) => {
    const before = await poolState('guarded');
    const result = await stack.execute({ pool: 'guarded', ...input });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RunInputInvalid');
    expect(readableCause(result.error ?? '', result.cause)).toMatch(message);
    expect(await poolState('guarded')).toEqual(before);
  });

  it('stops when another run is growing the pool, and gives the pool back after a run', async () => {
    const holder = await stack.pool.takeLease(
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
      (await stack.pool.takeLease('guarded', 'next-run', new Date(Date.now() + 1000), new Date())).taken,
    ).toBe(true);
  });
});

describe('a pool and the bundled seeds', () => {
  it('creates nothing for a new pool whose run input is invalid', async () => {
    const result = await stack.execute({ pool: 'never', model: 'nope:nothing' });
    expect(result.error).toBe('RunInputInvalid');
    expect(await poolState('never')).toMatchObject({ items: 0, objects: 0 });
  });

  it('seed a new pool when no seed file is given, and never a pool grown from its own seeds', async () => {
    const bundled = fromJsonLines((await stack.objects.getText(DEFAULT_SEED_KEY)) ?? '').length;
    const small = { target: 2, maxIterations: 1, promptsPerIteration: 1 };
    const fresh = await stack.execute({ pool: 'bundled', ...small });
    expect(fresh.status, String(fresh.cause)).toBe('SUCCEEDED');
    expect(fromJsonLines(await stack.objects.getText(poolKeys('bundled').seeds))).toHaveLength(bundled);

    await stack.objects.put('seeds/p2/mine.jsonl', `${line(goodTask)}\n`);
    const first = await stack.execute({ pool: 'p2', seedKey: 'seeds/p2/mine.jsonl', ...small });
    expect(first.status, String(first.cause)).toBe('SUCCEEDED');
    const again = await stack.execute({ pool: 'p2', ...small });
    expect(again.status, String(again.cause)).toBe('SUCCEEDED');
    expect(fromJsonLines(await stack.objects.getText(poolKeys('p2').seeds))).toEqual([goodTask]);
    const seeds = [];
    for await (const task of stack.pool.listTasks('p2'))
      if (task.source === 'seed') seeds.push(task.instruction);
    expect(seeds).toEqual([goodTask.instruction]);
  });
});
