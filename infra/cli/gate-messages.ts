/**
 * The messages between the main thread and the gate's worker threads (`gate-threads.ts`,
 * `gate-worker.ts`): typed arrays, cheap to copy between threads.
 */
import type { ShardScores } from '../../functions/shared/engine/shard.ts';

/** What a worker starts with: the pool's token ids (see `TokenPool.storage`). */
export interface GateWorkerData {
  tokens: Int32Array;
  offsets: Int32Array;
  kernel: 'auto' | 'js';
}

/** Sequences packed in two arrays: sequence i is `values[offsets[i] .. offsets[i + 1])`. */
export interface Packed<T extends Int32Array | Float64Array = Int32Array> {
  values: T;
  offsets: Int32Array;
}

/** One message to a worker: finish the batch begun, append instructions, begin a batch; all optional. */
export interface GateStep {
  /** Top k of the batch's `finish`, and the largest the next `begin` must hold. */
  k: number;
  /** Each candidate's pool size, and to the last range's worker its scores in the batch (`PoolShard.finish`). */
  finish?: { sizes: Int32Array; tails?: Packed<Float64Array> };
  /** Token ids of the instructions accepted since the last step, in order. */
  append?: Packed;
  /** Candidates (token ids) to scan against the pool's instructions `[from, to)`. */
  begin?: Packed & { from: number; to: number };
}

/** A worker's answer to a step. */
export interface GateReply {
  scores?: ShardScores;
  highest?: Float64Array;
}

/** Packs sequences of numbers into one array of `type` for a message. */
export function pack<T extends Int32Array | Float64Array>(
  sequences: readonly ArrayLike<number>[],
  type: new (length: number) => T,
): Packed<T> {
  const offsets = new Int32Array(sequences.length + 1);
  sequences.forEach((sequence, i) => {
    offsets[i + 1] = (offsets[i] as number) + sequence.length;
  });
  const values = new type(offsets[sequences.length] as number);
  sequences.forEach((sequence, i) => {
    values.set(sequence, offsets[i]);
  });
  return { values, offsets };
}

/** The sequences of a packed message (views). */
export function unpack<T extends Int32Array | Float64Array>({ values, offsets }: Packed<T>): T[] {
  return Array.from(
    { length: offsets.length - 1 },
    (_, i) => values.subarray(offsets[i], offsets[i + 1]) as T,
  );
}
