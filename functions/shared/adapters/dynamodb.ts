/**
 * `PoolStore` on one DynamoDB table (partition key `pk`, sort key `sk`):
 * - a pool task:  `POOL#<pool>` / `TASK#<id>` (the id derives from the normalized instruction, so a
 *   conditional put keeps an instruction from being stored twice in a pool);
 * - a pool's counters: `POOL#<pool>` / `META`;
 * - a run:        `RUN#<runId>` / `RUN`.
 */
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { awsClientConfig } from '../config.ts';
import type { IterationUpdate, PoolLease, PoolStore, PoolTask, RunRecord } from '../ports.ts';

const taskKey = (pool: string, id: string) => ({ pk: `POOL#${pool}`, sk: `TASK#${id}` });
const metaKey = (pool: string) => ({ pk: `POOL#${pool}`, sk: 'META' });
const runKey = (runId: string) => ({ pk: `RUN#${runId}`, sk: 'RUN' });

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

export class DynamoPoolStore implements PoolStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    private readonly table: string,
    client = new DynamoDBClient(awsClientConfig('dynamodb')),
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async putTaskIfAbsent(task: PoolTask): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...taskKey(task.pool, task.id), ...task },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async getTasks(pool: string, ids: readonly string[]): Promise<PoolTask[]> {
    const found = new Map<string, PoolTask>();
    for (let start = 0; start < ids.length; start += 100) {
      let keys: Record<string, unknown>[] | undefined = ids
        .slice(start, start + 100)
        .map((id) => taskKey(pool, id));
      // BatchGet may return part of the keys as unprocessed under load: ask again for those.
      for (let attempt = 0; keys && keys.length > 0; attempt++) {
        if (attempt > 0)
          await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
        const reply: BatchGetCommandOutput = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys } } }),
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

  async updateTask(task: PoolTask): Promise<void> {
    await this.doc.send(
      new PutCommand({ TableName: this.table, Item: { ...taskKey(task.pool, task.id), ...task } }),
    );
  }

  async *listTasks(pool: string): AsyncIterable<PoolTask> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :task)',
          ExpressionAttributeValues: { ':pk': `POOL#${pool}`, ':task': 'TASK#' },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) yield stripKeys<PoolTask>(item);
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  async countComplete(pool: string): Promise<number> {
    const reply = await this.doc.send(new GetCommand({ TableName: this.table, Key: metaKey(pool) }));
    return Number(reply.Item?.taskCount ?? 0);
  }

  async addToPoolCount(pool: string, complete: number): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: metaKey(pool),
        UpdateExpression: 'ADD taskCount :n',
        ExpressionAttributeValues: { ':n': complete },
      }),
    );
  }

  async leasePool(pool: string, runId: string, until: Date, now: Date): Promise<PoolLease> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: 'SET activeRun = :run, leaseUntil = :until',
          ConditionExpression: 'attribute_not_exists(activeRun) OR activeRun = :run OR leaseUntil < :now',
          ExpressionAttributeValues: {
            ':run': runId,
            ':until': until.toISOString(),
            ':now': now.toISOString(),
          },
        }),
      );
      return { taken: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const reply = await this.doc.send(new GetCommand({ TableName: this.table, Key: metaKey(pool) }));
      return { taken: false, holder: String(reply.Item?.activeRun), until: String(reply.Item?.leaseUntil) };
    }
  }

  async releasePool(pool: string, runId: string | undefined): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: metaKey(pool),
          UpdateExpression: 'REMOVE activeRun, leaseUntil',
          ConditionExpression: runId === undefined ? 'attribute_exists(pk)' : 'activeRun = :run',
          ExpressionAttributeValues: runId === undefined ? undefined : { ':run': runId },
        }),
      );
    } catch (error) {
      // Not ours (or no pool yet): nothing to give up.
      if (!isConditionFailure(error)) throw error;
    }
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
          iterations: {},
          ...run,
        },
      }),
    );
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const reply = await this.doc.send(new GetCommand({ TableName: this.table, Key: runKey(runId) }));
    return reply.Item ? stripKeys<RunRecord>(reply.Item) : undefined;
  }

  async addIteration(
    runId: string,
    iteration: number,
    { stats, increments }: IterationUpdate,
  ): Promise<boolean> {
    // Every attribute through a placeholder: `usage` and friends are DynamoDB reserved words.
    const names: Record<string, string> = {
      '#iteration': 'iteration',
      '#saved': 'savedIterations',
      '#its': 'iterations',
    };
    const values: Record<string, unknown> = {
      ':i': iteration,
      ':iset': new Set([iteration]),
      ':stats': stats,
    };
    const sets = ['#iteration = :i', `#its.#n = :stats`];
    names['#n'] = String(iteration);
    let n = 0;
    for (const [map, entries] of Object.entries(increments)) {
      names[`#${map}`] = map;
      for (const [key, value] of Object.entries(entries ?? {})) {
        const path = `#${map}.#k${n}`;
        names[`#k${n}`] = key;
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

  async finishRun(
    runId: string,
    patch: Pick<RunRecord, 'status' | 'stopReason' | 'error' | 'cause' | 'exportPrefix' | 'iteration'>,
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
