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
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { build, stop } from 'esbuild';
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
import { type GateReply, type GateStep, type GateWorkerData, pack } from './gate-messages.ts';

/**
 * Candidates per batch: larger than the in-process gate's (`BATCH`), since each batch costs a message to
 * every worker and back, and the main thread decides alone while the workers wait. On the 118K-candidate
 * stream of `npm run bench:dedup`, 256 took about 8% less CPU and wall time than 128; 512 no less than
 * 256, with more memory.
 */
export const THREADED_BATCH = 256;

/** Worker threads for `threads: 'auto'`: every core when the work pays for starting them, else none. */
export function autoThreads(poolSize: number, candidates: number): number {
  // Starting a worker costs ~0.3 s, the time of ~30 M pairs on one core.
  return poolSize * candidates + (candidates * candidates) / 4 > 30_000_000 ? availableParallelism() : 0;
}

let workerCode: Promise<string> | undefined;

/**
 * The worker's code: `gate-worker.ts` and what it imports, bundled by esbuild (once per process), so that
 * a worker thread starts without a TypeScript loader of its own.
 */
function gateWorkerCode(): Promise<string> {
  workerCode ??= build({
    entryPoints: [fileURLToPath(new URL('./gate-worker.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    logLevel: 'error',
  })
    .then(({ outputFiles }) => {
      const [bundle] = outputFiles;
      if (bundle === undefined) throw new Error('esbuild wrote no bundle of the gate worker');
      return bundle.text;
    })
    // esbuild keeps a child process for later builds; there are none.
    .finally(() => stop());
  return workerCode;
}

class GateWorker {
  readonly #worker: Worker;
  #pending: { resolve: (reply: GateReply) => void; reject: (error: Error) => void } | null = null;
  #failure: Error | null = null;

  constructor(code: string, data: GateWorkerData) {
    this.#worker = new Worker(code, { eval: true, workerData: data });
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
  const code = await gateWorkerCode();
  const { tokens, offsets } = index.storage();
  const workers = Array.from(
    { length: Math.max(1, options.threads) },
    () => new GateWorker(code, { tokens: tokens.slice(), offsets: offsets.slice(), kernel: settings.kernel }),
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
