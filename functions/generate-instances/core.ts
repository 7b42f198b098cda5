/**
 * Stage "Generate instances" (Self-Instruct step 3), run by the Map state once per chunk of accepted
 * instructions: for each, decide whether it is a classification task (unless the instruction stage
 * already said), generate instances output-first for classification and input-first otherwise (unless
 * the task arrived with its instance, as in Alpaca), and keep the instances that pass the paper's
 * instance filters. A task left with none is marked rejected. The chunk's tasks run concurrently,
 * with a bound on model calls at once.
 */
import pLimit from 'p-limit';
import type { z } from 'zod';
import { filterInstances } from '../shared/engine/instances.ts';
import { toSeedFormat } from '../shared/exports/formats.ts';
import { runKeys } from '../shared/keys.ts';
import { ModelCalls, toJsonLines } from '../shared/model-calls.ts';
import type { ObjectStore, PoolStore, PoolTask, TextModel } from '../shared/ports.ts';
import { PROFILES } from '../shared/profiles.ts';
import { Chunk, type Counts, type Instance, RunState, type UsageByStage } from '../shared/schemas.ts';
import {
  parseClassifyReply,
  parseInstancesReply,
  renderClassifyRequest,
  renderInstancesRequest,
} from './prompt.ts';

export const InstancesInput = RunState.pick({ runId: true, config: true, progress: true }).extend({
  chunk: Chunk,
});
export type InstancesInput = z.infer<typeof InstancesInput>;

export interface InstancesResult {
  chunk: number;
  /** `complete`, `rejected`, one key per task rejection reason, and per-instance drop reasons. */
  counts: Counts;
  usage: UsageByStage;
}

export async function generateInstances(
  { runId, config, progress, chunk }: InstancesInput,
  { objects, pool, model }: { objects: ObjectStore; pool: PoolStore; model: TextModel },
): Promise<InstancesResult> {
  const profile = PROFILES[config.profile];
  const keys = runKeys(runId, progress.iteration + 1);
  const calls = new ModelCalls(model, config);
  const limit = pLimit(config.callConcurrency);
  const counts: Counts = { complete: 0, rejected: 0 };
  const count = (key: string, n = 1) => {
    counts[key] = (counts[key] ?? 0) + n;
  };

  const tasks = await pool.getTasks(config.pool, chunk.ids);
  const done = await Promise.all(
    tasks.map(async (task): Promise<PoolTask> => {
      // A retried Map item finds the tasks it already finished.
      if (task.status !== 'pending') return task;

      // A task that arrived with its instance (Alpaca's batched generation) needs no classification:
      // it only decides how instances are generated. Stanford Alpaca does not classify either.
      const carriesInstance = task.proposed?.output !== undefined;
      let isClassification = task.proposed?.isClassification ?? (carriesInstance ? false : undefined);
      if (isClassification === undefined) {
        const reply = await limit(() => calls.call(renderClassifyRequest(config.profile, task.instruction)));
        const parsed = parseClassifyReply(config.profile, reply.text);
        if (parsed === null) count('classify-unparseable');
        isClassification = parsed ?? false;
      }

      const raw: Instance[] = [];
      if (carriesInstance) {
        raw.push({ input: task.proposed?.input ?? '', output: task.proposed?.output ?? '' });
      } else {
        for (let round = 0; round < config.instanceRounds; round++) {
          const request = renderInstancesRequest(config.profile, task.instruction, isClassification);
          const reply = await limit(() => calls.call(request));
          const parsed = parseInstancesReply(config.profile, reply, isClassification);
          if (parsed.malformed) count('instances-unparseable');
          raw.push(...parsed.instances);
        }
      }

      const filtered = filterInstances(raw, { maxInstances: profile.maxInstances });
      for (const [reason, n] of Object.entries<number>(filtered.dropped)) count(`instance-${reason}`, n);
      const rejectReason =
        filtered.taskRejected ?? (filtered.kept.length === 0 ? 'no-valid-instances' : undefined);
      const updated: PoolTask = {
        ...task,
        isClassification,
        instances: rejectReason ? [] : filtered.kept,
        status: rejectReason ? 'rejected' : 'complete',
        rejectReason,
      };
      await pool.updateTask(updated);
      return updated;
    }),
  );

  for (const task of done) {
    if (task.status === 'complete') count('complete');
    else {
      count('rejected');
      count(task.rejectReason ?? 'rejected-unknown');
    }
  }
  const complete = done.filter((task) => task.status === 'complete').map(toSeedFormat);
  await objects.put(keys.chunkTasks(chunk.index), toJsonLines(complete), 'application/jsonl');
  if (calls.records.length > 0) {
    await objects.put(keys.raw('generate-instances', chunk.index), calls.toJsonLines(), 'application/jsonl');
  }
  return { chunk: chunk.index, counts, usage: calls.usage };
}
