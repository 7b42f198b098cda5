/**
 * The ROUGE-L gate over worker threads, for `selfinstruct dedup`: the same decisions, scores, top k and
 * means as `gate()`, at the pace of every core.
 *
 * The gate is sequential in the candidates' order, but only its decisions are: each worker keeps a copy
 * of the pool's token ids and scans a batch of candidates against its own consecutive range of the pool
 * (`PoolShard`), returning each candidate's highest score there; the main thread decides the batch in
 * order (comparing candidates with the batch's earlier accepted ones itself), which fixes each one's
 * pool size; then the workers return each candidate's top k and share of the pairwise sum of its scores
 * over their ranges, and the main thread merges them (`mergeBatch`). One message per batch and worker
 * carries the end of a batch, the instructions it accepted and the start of the next, and the main thread
 * merges and hands out a batch's results while the workers work on the next.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { RougeIndex } from '../../functions/shared/engine/rouge-index.ts';
import {
  type Batch,
  commitBatch,
  type Decision,
  decideBatch,
  type GateOptions,
  type GateResult,
  gateSettings,
  mergeBatch,
  prepareBatch,
} from '../../functions/shared/engine/scoring.ts';
import type { ShardScores } from '../../functions/shared/engine/shard.ts';

/** What a worker starts with: the pool's token ids (see `TokenPool.storage`). */
export interface GateWorkerData {
  tokens: Int32Array;
  offsets: Int32Array;
  kernel: 'auto' | 'js';
}

/**
 * Candidates per batch: larger than the in-process gate's (`BATCH`), since each batch costs a message to
 * every worker and back, and the main thread decides alone while the workers wait.
 */
export const THREADED_BATCH = 128;

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
interface GateReply {
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

/** Worker threads for `threads: 'auto'`: every core when the work pays for starting them, else none. */
export function autoThreads(poolSize: number, candidates: number): number {
  // Starting a worker costs ~0.3 s, the time of ~30 M pairs on one core.
  return poolSize * candidates + (candidates * candidates) / 4 > 30_000_000 ? availableParallelism() : 0;
}

class GateWorker {
  readonly #worker: Worker;
  #pending: { resolve: (reply: GateReply) => void; reject: (error: Error) => void } | null = null;
  #failure: Error | null = null;

  constructor(data: GateWorkerData) {
    this.#worker = new Worker(new URL('./gate-worker.mjs', import.meta.url), { workerData: data });
    this.#worker.on('message', (reply: GateReply) => {
      const pending = this.#pending;
      this.#pending = null;
      pending?.resolve(reply);
    });
    const fail = (error: Error) => {
      this.#failure ??= error;
      const pending = this.#pending;
      this.#pending = null;
      pending?.reject(error);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`a gate worker exited (code ${code})`)));
  }

  step(step: GateStep): Promise<GateReply> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#worker.postMessage(step);
    });
  }

  async terminate(): Promise<void> {
    this.#worker.removeAllListeners('exit');
    await this.#worker.terminate();
  }
}

/** `[from, to)` of each of `parts` consecutive ranges splitting `[0, size)` evenly. */
function ranges(size: number, parts: number): [number, number][] {
  return Array.from({ length: parts }, (_, w) => [
    Math.floor((w * size) / parts),
    Math.floor(((w + 1) * size) / parts),
  ]);
}

/** A batch decided and committed, waiting for its scores. */
interface Decided {
  batch: Batch;
  decisions: Decision[];
  documents: number;
  ranges: [number, number][];
}

/**
 * Gates `texts` in order against `index` on `threads` worker threads (at least 1), adding every
 * accepted candidate to the index; yields the results batch by batch, in order. Results equal `gate()`'s.
 * The index runs a batch ahead: when a batch is yielded, the next one's accepted candidates are in it.
 */
export async function* gateInThreads(
  index: RougeIndex,
  texts: readonly string[],
  options: GateOptions & { threads: number },
): AsyncGenerator<GateResult[]> {
  const settings = gateSettings(options);
  const k = settings.topK;
  const { tokens, offsets } = index.storage();
  const workers = Array.from(
    { length: Math.max(1, options.threads) },
    () => new GateWorker({ tokens: tokens.slice(), offsets: offsets.slice(), kernel: settings.kernel }),
  );
  const step = (each: (w: number) => GateStep) =>
    Promise.all(workers.map((worker, w) => worker.step(each(w))));
  const begin = (start: number) => {
    const batch = prepareBatch(index, texts.slice(start, start + THREADED_BATCH));
    const split = ranges(index.size, workers.length);
    const candidates = pack(batch.ids, Int32Array);
    return {
      batch,
      split,
      message: (w: number) => ({ ...candidates, from: split[w]?.[0] ?? 0, to: split[w]?.[1] ?? 0 }),
    };
  };
  const decide = (started: ReturnType<typeof begin>, replies: GateReply[]): Decided => {
    const highest = new Float64Array(started.batch.ids.length);
    for (const reply of replies) {
      reply.highest?.forEach((score, c) => {
        if (score > (highest[c] as number)) highest[c] = score;
      });
    }
    const documents = index.size;
    const decisions = decideBatch(started.batch, highest, documents, settings.threshold, true);
    commitBatch(index, started.batch, decisions);
    return { batch: started.batch, decisions, documents, ranges: started.split };
  };
  const merge = (decided: Decided, replies: GateReply[]) =>
    mergeBatch(
      index,
      decided.batch,
      decided.decisions,
      replies.map((reply, w) => ({ from: decided.ranges[w]?.[0] ?? 0, scores: reply.scores as ShardScores })),
      k,
    );

  try {
    if (texts.length === 0) return;
    let started = begin(0);
    const first = started;
    let current = decide(started, await step((w) => ({ k, begin: first.message(w) })));
    let waiting: { decided: Decided; replies: GateReply[] } | null = null;
    for (let start = THREADED_BATCH; ; start += THREADED_BATCH) {
      const ending = current;
      const next = start < texts.length ? begin(start) : null;
      const accepted = pack(
        Array.from({ length: index.size - ending.documents }, (_, i) => index.tokenIds(ending.documents + i)),
        Int32Array,
      );
      const sizes = Int32Array.from(ending.decisions, (decision) => decision.size);
      const tails = pack(
        ending.decisions.map((decision) => decision.inBatch),
        Float64Array,
      );
      const last = workers.length - 1;
      const replies = step((w) => ({
        k,
        finish: w === last ? { sizes, tails } : { sizes },
        append: accepted,
        ...(next ? { begin: next.message(w) } : {}),
      }));
      if (waiting !== null) yield merge(waiting.decided, waiting.replies);
      const answered = await replies;
      waiting = { decided: ending, replies: answered };
      if (next === null) break;
      started = next;
      current = decide(started, answered);
    }
    yield merge(waiting.decided, waiting.replies);
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}
