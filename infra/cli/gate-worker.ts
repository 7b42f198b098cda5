/**
 * A gate worker thread: keeps a copy of the pool's token ids and runs one `PoolShard` over the range of
 * the pool the main thread assigns it, batch after batch (see `gate-threads.ts` for the protocol).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PoolShard } from '../../functions/shared/engine/shard.ts';
import { TokenPool } from '../../functions/shared/engine/token-pool.ts';
import { type GateStep, type GateWorkerData, unpack } from './gate-messages.ts';

const { tokens, offsets, kernel } = workerData as GateWorkerData;
const pool = TokenPool.fromArrays(tokens, offsets);
const shard = new PoolShard(pool, kernel);

parentPort?.on('message', (step: GateStep) => {
  const { finish } = step;
  const scores = finish
    ? shard.finish(finish.sizes, step.k, finish.tails && unpack(finish.tails))
    : undefined;
  if (step.append) for (const ids of unpack(step.append)) pool.append(ids);
  const highest = step.begin
    ? shard.begin(unpack(step.begin), step.begin.from, step.begin.to, step.k)
    : undefined;
  const transfer = [highest?.buffer, scores?.counts.buffer, scores?.positions.buffer, scores?.scores.buffer];
  transfer.push(scores?.ends.buffer, scores?.sumStarts.buffer, scores?.sums.buffer);
  parentPort?.postMessage(
    { scores, highest },
    transfer.filter((buffer): buffer is ArrayBuffer => buffer !== undefined),
  );
});
