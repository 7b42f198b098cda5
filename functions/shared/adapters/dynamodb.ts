/**
 * `PoolStore` on one DynamoDB table (partition key `pk`, sort key `sk`), without transactions (DynamoDB
 * Local servers such as dynalite have none): every change to the pool is a conditional write on one item.
 * - a pool task:  `POOL#<pool>` / `TASK#<id>` (the id derives from the normalized instruction, so a
 *   conditional put keeps an instruction from being stored twice in a pool); `staged` = `<run>#<iteration>`
 *   until that iteration commits;
 * - a pool's commit point, lease and counters: `POOL#<pool>` / `META`;
 * - a run:        `RUN#<runId>` / `RUN`;
 * - a billed model call of a run: `RUN#<runId>` / `CALL#<callKey>#<callId>`;
 * - batch mode's note of a job's submit: `RUN#<runId>` / `BATCHJOB#<job name>`.
 */
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import pLimit from 'p-limit';
import { awsClientConfig } from '../config.ts';
import type {
  BatchSubmitNote,
  CommitResult,
  IterationUpdate,
  PoolCommit,
  PoolLease,
  PoolMeta,
  PoolStore,
  PoolTask,
  RunRecord,
  StoredCall,
} from '../ports.ts';
import type { IterationRecord } from '../records.ts';

const taskKey = (pool: string, id: string) => ({ pk: `POOL#${pool}`, sk: `TASK#${id}` });
const metaKey = (pool: string) => ({ pk: `POOL#${pool}`, sk: 'META' });
const runKey = (runId: string) => ({ pk: `RUN#${runId}`, sk: 'RUN' });
const ITERATION_PREFIX = 'ITER#';
/** An iteration's item: its stats and the increments it added to the run's counters. */
const iterationKey = (runId: string, iteration: number) => ({
  pk: `RUN#${runId}`,
  sk: `${ITERATION_PREFIX}${String(iteration).padStart(6, '0')}`,
});
const callKey = (runId: string, call: Pick<StoredCall, 'callKey' | 'callId'>) => ({
  pk: `RUN#${runId}`,
  sk: `CALL#${call.callKey}#${call.callId}`,
});

const batchJobKey = (runId: string, job: string) => ({ pk: `RUN#${runId}`, sk: `BATCHJOB#${job}` });

function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error as { name?: string }).name === 'ConditionalCheckFailedException'
  );
}

/** Runs a conditional write: true when it was made, false when its condition did not hold. */
async function conditionally(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}

function toMeta(item: Record<string, unknown>): PoolMeta {
  return {
    taskCount: Number(item.taskCount ?? 0),
    seedCount: Number(item.seedCount ?? 0),
    fence: Number(item.fence ?? 0),
    lease:
      typeof item.activeRun === 'string'
        ? { runId: item.activeRun, until: String(item.leaseUntil) }
        : undefined,
    commit:
      typeof item.commitRun === 'string'
        ? { runId: item.commitRun, iteration: Number(item.commitIteration) }
        : undefined,
    seedsKey: item.seedsKey as string | undefined,
    indexKey: item.indexKey as string | undefined,
    vectorsKey: item.vectorsKey as string | undefined,
  };
}

/** Writes to many items at once. */
const writes = pLimit(16);

export class DynamoPoolStore implements PoolStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    private readonly table: string,
    client = new DynamoDBClient(awsClientConfig('dynamodb')),
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async getMeta(pool: string): Promise<PoolMeta | undefined> {
    const reply = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: metaKey(pool), ConsistentRead: true }),
    );
    return reply.Item ? toMeta(reply.Item) : undefined;
  }

  async takeLease(
    pool: string,
    runId: string,
    until: Date,
    now: Date,
    abandoned?: string,
  ): Promise<PoolLease> {
    // Renewed by the run that holds it (a retried "Prepare run"): same token.
    try {
      const renewed = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: 'SET leaseUntil = :until',
          ConditionExpression: 'activeRun = :run',
          ExpressionAttributeValues: { ':run': runId, ':until': until.toISOString() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { taken: true, fence: Number(renewed.Attributes?.fence ?? 0) };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
    const free = ['attribute_not_exists(activeRun)', 'leaseUntil < :now'];
    const values: Record<string, unknown> = {
      ':run': runId,
      ':until': until.toISOString(),
      ':now': now.toISOString(),
      ':one': 1,
    };
    if (abandoned !== undefined) {
      free.push('activeRun = :abandoned');
      values[':abandoned'] = abandoned;
    }
    try {
      const taken = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: 'SET activeRun = :run, leaseUntil = :until ADD fence :one',
          ConditionExpression: free.join(' OR '),
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_OLD',
        }),
      );
      const old = taken.Attributes ?? {};
      return {
        taken: true,
        fence: Number(old.fence ?? 0) + 1,
        previous:
          typeof old.activeRun === 'string'
            ? { runId: old.activeRun, until: String(old.leaseUntil) }
            : undefined,
      };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const meta = await this.getMeta(pool);
      return { taken: false, holder: String(meta?.lease?.runId), until: String(meta?.lease?.until) };
    }
  }

  renewLease(pool: string, runId: string, fence: number, until: Date): Promise<boolean> {
    return conditionally(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: 'SET leaseUntil = :until',
          ConditionExpression: 'activeRun = :run AND fence = :fence',
          ExpressionAttributeValues: { ':run': runId, ':fence': fence, ':until': until.toISOString() },
        }),
      ),
    );
  }

  resumeLease(pool: string, runId: string, fence: number, until: Date): Promise<boolean> {
    return conditionally(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: 'SET activeRun = :run, leaseUntil = :until',
          ConditionExpression: 'attribute_not_exists(activeRun) AND fence = :fence',
          ExpressionAttributeValues: { ':run': runId, ':fence': fence, ':until': until.toISOString() },
        }),
      ),
    );
  }

  async reopenRun(runId: string): Promise<void> {
    await conditionally(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: runKey(runId),
          UpdateExpression: 'SET #status = :running REMOVE #error, #cause, endedAt',
          ConditionExpression: 'attribute_exists(pk) AND #status <> :succeeded',
          ExpressionAttributeNames: { '#status': 'status', '#error': 'error', '#cause': 'cause' },
          ExpressionAttributeValues: { ':running': 'RUNNING', ':succeeded': 'SUCCEEDED' },
        }),
      ),
    );
  }

  async releasePool(pool: string, runId: string | undefined): Promise<void> {
    // Not ours (or no pool yet): nothing to give up.
    await conditionally(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: 'REMOVE activeRun, leaseUntil',
          ConditionExpression: runId === undefined ? 'attribute_exists(pk)' : 'activeRun = :run',
          ExpressionAttributeValues: runId === undefined ? undefined : { ':run': runId },
        }),
      ),
    );
  }

  async commit(pool: string, commit: PoolCommit): Promise<CommitResult> {
    const sets = ['commitRun = :run', 'commitIteration = :i'];
    const values: Record<string, unknown> = {
      ':run': commit.runId,
      ':i': commit.iteration,
      ':fence': commit.fence,
      ':n': commit.complete,
      ':seeds': commit.seeds ?? 0,
    };
    if (commit.seedsKey !== undefined) {
      sets.push('seedsKey = :seedsKey');
      values[':seedsKey'] = commit.seedsKey;
    }
    if (commit.indexKey !== undefined) {
      sets.push('indexKey = :indexKey');
      values[':indexKey'] = commit.indexKey;
    }
    if (commit.vectorsKey !== undefined) {
      sets.push('vectorsKey = :vectorsKey');
      values[':vectorsKey'] = commit.vectorsKey;
    }
    const made = await conditionally(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: `SET ${sets.join(', ')} ADD taskCount :n, seedCount :seeds`,
          ConditionExpression:
            'activeRun = :run AND fence = :fence AND ' +
            '(attribute_not_exists(commitRun) OR commitRun <> :run OR commitIteration < :i)',
          ExpressionAttributeValues: values,
        }),
      ),
    );
    if (made) return 'committed';
    const meta = await this.getMeta(pool);
    return meta?.commit?.runId === commit.runId && meta.commit.iteration >= commit.iteration
      ? 'already-committed'
      : 'lease-lost';
  }

  putTaskIfAbsent(task: PoolTask): Promise<boolean> {
    return conditionally(() =>
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...taskKey(task.pool, task.id), ...task },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
  }

  replaceStaged(task: PoolTask, staged: string): Promise<boolean> {
    return conditionally(() =>
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...taskKey(task.pool, task.id), ...task },
          ConditionExpression: 'staged = :staged',
          ExpressionAttributeValues: { ':staged': staged },
        }),
      ),
    );
  }

  finishTask(task: PoolTask): Promise<boolean> {
    return conditionally(() =>
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...taskKey(task.pool, task.id), ...task },
          ConditionExpression: '#status = :pending AND staged = :staged',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':pending': 'pending', ':staged': task.staged },
        }),
      ),
    );
  }

  async clearStaged(pool: string, ids: readonly string[], staged: string): Promise<void> {
    await Promise.all(
      ids.map((id) =>
        writes(() =>
          conditionally(() =>
            this.doc.send(
              new UpdateCommand({
                TableName: this.table,
                Key: taskKey(pool, id),
                UpdateExpression: 'REMOVE staged',
                ConditionExpression: 'staged = :staged',
                ExpressionAttributeValues: { ':staged': staged },
              }),
            ),
          ),
        ),
      ),
    );
  }

  deleteStaged(pool: string, id: string, staged: string): Promise<boolean> {
    return conditionally(() =>
      this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: taskKey(pool, id),
          ConditionExpression: 'staged = :staged',
          ExpressionAttributeValues: { ':staged': staged },
        }),
      ),
    );
  }

  async getTasks(pool: string, ids: readonly string[]): Promise<PoolTask[]> {
    const found = new Map<string, PoolTask>();
    for (let start = 0; start < ids.length; start += 100) {
      let keys: Record<string, unknown>[] | undefined = [...new Set(ids.slice(start, start + 100))].map(
        (id) => taskKey(pool, id),
      );
      // BatchGet may return part of the keys as unprocessed under load: ask again for those.
      for (let attempt = 0; keys && keys.length > 0; attempt++) {
        if (attempt > 0)
          await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
        const reply: BatchGetCommandOutput = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }),
        );
        for (const item of reply.Responses?.[this.table] ?? []) {
          const task = stripKeys<PoolTask>(item);
          found.set(task.id, task);
        }
        keys = reply.UnprocessedKeys?.[this.table]?.Keys;
      }
    }
    return ids.flatMap((id) => found.get(id) ?? []);
  }

  private async *query(input: Omit<QueryCommandInput, 'TableName'>): AsyncIterable<Record<string, unknown>> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({ TableName: this.table, ...input, ExclusiveStartKey: startKey }),
      );
      yield* page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  async *listTasks(pool: string): AsyncIterable<PoolTask> {
    for await (const item of this.query({
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :task)',
      FilterExpression: 'attribute_not_exists(staged)',
      ExpressionAttributeValues: { ':pk': `POOL#${pool}`, ':task': 'TASK#' },
    })) {
      yield stripKeys<PoolTask>(item);
    }
  }

  async *listStaged(pool: string): AsyncIterable<Pick<PoolTask, 'id' | 'staged' | 'status'>> {
    for await (const item of this.query({
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :task)',
      FilterExpression: 'attribute_exists(staged)',
      ProjectionExpression: '#id, staged, #status',
      ExpressionAttributeNames: { '#id': 'id', '#status': 'status' },
      ExpressionAttributeValues: { ':pk': `POOL#${pool}`, ':task': 'TASK#' },
      ConsistentRead: true,
    })) {
      yield item as Pick<PoolTask, 'id' | 'staged' | 'status'>;
    }
  }

  async countComplete(pool: string): Promise<number> {
    return (await this.getMeta(pool))?.taskCount ?? 0;
  }

  async noteBatchSubmit(runId: string, job: string, at: string): Promise<BatchSubmitNote | undefined> {
    // Only the first attempt's time is stored: a retry reads it back.
    const first = await conditionally(() =>
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...batchJobKey(runId, job), startedAt: at },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
    if (first) return undefined;
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: batchJobKey(runId, job), ConsistentRead: true }),
    );
    if (!Item) throw new Error(`The batch submit note of job ${job} (run ${runId}) vanished`);
    const { startedAt, jobId } = stripKeys<BatchSubmitNote>(Item);
    return jobId === undefined ? { startedAt } : { startedAt, jobId };
  }

  async recordBatchJob(runId: string, job: string, jobId: string): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: batchJobKey(runId, job),
        UpdateExpression: 'SET jobId = :jobId',
        ExpressionAttributeValues: { ':jobId': jobId },
      }),
    );
  }

  async putCall(runId: string, call: StoredCall): Promise<void> {
    // A write the SDK repeated after a lost reply finds the call recorded: nothing to add.
    await conditionally(() =>
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...callKey(runId, call), ...call },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
  }

  async listCalls(runId: string, prefix: string): Promise<StoredCall[]> {
    const calls: StoredCall[] = [];
    for await (const item of this.query({
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': `RUN#${runId}`, ':prefix': `CALL#${prefix}` },
      ConsistentRead: true,
    })) {
      calls.push(stripKeys<StoredCall>(item));
    }
    return calls;
  }

  async putRun(run: RunRecord): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        // The counter maps exist from the start: updates add to their entries.
        Item: {
          ...runKey(run.runId),
          counts: {},
          usage: {},
          stageUsage: {},
          cost: {},
          ...run,
        },
      }),
    );
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const reply = await this.doc.send(new GetCommand({ TableName: this.table, Key: runKey(runId) }));
    return reply.Item ? stripKeys<RunRecord>(reply.Item) : undefined;
  }

  async addIteration(runId: string, iteration: number, update: IterationUpdate): Promise<boolean> {
    // First the iteration's own item, once: a retry finds the first attempt's and adds the increments
    // stored with it, so the counters always sum what the iteration items say (no transactions needed).
    const key = iterationKey(runId, iteration);
    let stored = update;
    const first = await conditionally(() =>
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...key, ...update },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
    if (!first) {
      const reply = await this.doc.send(
        new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }),
      );
      stored = stripKeys<IterationUpdate>(reply.Item ?? {});
    }
    // Every attribute through a placeholder: `usage` and friends are DynamoDB reserved words.
    const names: Record<string, string> = { '#iteration': 'iteration', '#saved': 'savedIterations' };
    const values: Record<string, unknown> = { ':i': iteration, ':iset': new Set([iteration]) };
    const sets = ['#iteration = :i'];
    let n = 0;
    for (const [map, entries] of Object.entries(stored.increments)) {
      names[`#${map}`] = map;
      for (const [name, value] of Object.entries(entries ?? {})) {
        const path = `#${map}.#k${n}`;
        names[`#k${n}`] = name;
        values[`:v${n}`] = value;
        values[':zero'] = 0;
        sets.push(`${path} = if_not_exists(${path}, :zero) + :v${n}`);
        n++;
      }
    }
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: runKey(runId),
          UpdateExpression: `SET ${sets.join(', ')} ADD #saved :iset`,
          ConditionExpression: 'attribute_exists(pk) AND NOT contains(#saved, :i)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async getIterations(runId: string): Promise<Record<string, IterationRecord>> {
    // Runs saved before iterations had items of their own keep them in the run item.
    const run = await this.getRun(runId);
    const iterations: Record<string, IterationRecord> = { ...run?.iterations };
    for await (const item of this.query({
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': `RUN#${runId}`, ':prefix': ITERATION_PREFIX },
      ConsistentRead: true,
    })) {
      iterations[String(Number(String(item.sk).slice(ITERATION_PREFIX.length)))] = (
        item as unknown as IterationUpdate
      ).stats;
    }
    return iterations;
  }

  async finishRun(
    runId: string,
    patch: Pick<
      RunRecord,
      'status' | 'stopReason' | 'error' | 'cause' | 'exportPrefix' | 'iteration' | 'usage' | 'stageUsage'
    >,
  ): Promise<void> {
    const entries = Object.entries({ ...patch, endedAt: new Date().toISOString() }).filter(
      ([, value]) => value !== undefined,
    );
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: runKey(runId),
        UpdateExpression: `SET ${entries.map((_, i) => `#f${i} = :f${i}`).join(', ')}`,
        ExpressionAttributeNames: Object.fromEntries(entries.map(([key], i) => [`#f${i}`, key])),
        ExpressionAttributeValues: Object.fromEntries(entries.map(([, value], i) => [`:f${i}`, value])),
      }),
    );
  }
}
