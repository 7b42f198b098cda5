/**
 * The gate's engine: scores candidates against a `RougeIndex` exactly as the original does (same tokenizer,
 * LCS and floating-point operations; NumPy's pairwise summation for the mean), with bit-parallel LCS over
 * token ids instead of a dynamic-programming table over strings.
 *
 * Pruning cannot help much: the mean needs every non-zero score, and nearly every pair shares a token
 * ("a", "the", "of"). Candidates go in batches of `BATCH`, each in four steps:
 * 1. `prepareBatch`: token ids;
 * 2. shards (`shard.ts`) compare the batch with the pool as it stood before it and return each
 *    candidate's highest score;
 * 3. `decideBatch` decides in order, comparing each candidate with the batch's earlier accepted ones
 *    directly, which fixes each one's pool size;
 * 4. the shards return top k and their shares of the pairwise sums (the last one taking the scores
 *    against the batch's accepted candidates), and `mergeBatch` puts them together.
 * `runGate` does this in-process with one shard; `selfinstruct dedup` with one shard per worker thread.
 */
import { lcsAgainst } from './lcs-js.ts';
import { joinPairwise, type PairwisePart } from './mean.ts';
import { fMeasure, tokenize } from './rouge.ts';
import type { RougeIndex } from './rouge-index.ts';
import { PoolShard, type ShardScores, TopK } from './shard.ts';

/** The original's threshold: rejected when the highest ROUGE-L is strictly greater. */
export const DEFAULT_THRESHOLD = 0.7;
/** Most similar pool instructions reported per candidate, as the original records. */
export const DEFAULT_TOP_K = 10;
/**
 * Candidates scanned against the pool together (in scans of 16, or 8 of 33–64 tokens) before being
 * decided in order: large enough that the long ones rarely leave a scan mostly empty.
 */
export const BATCH = 64;

/** A pool instruction and its ROUGE-L F-measure with the candidate. */
export interface SimilarInstruction {
  instruction: string;
  /** Its place in the pool: the initial instructions in order, then each accepted candidate. */
  position: number;
  score: number;
}

/** The gate's verdict on one candidate. */
export interface GateResult {
  /** The candidate, as given. */
  instruction: string;
  /** False iff `maxSimilarity > threshold`, or a `veto` rejected it. */
  accepted: boolean;
  /** The reason a `veto` gave for rejecting a candidate the ROUGE-L threshold let through. */
  vetoed?: string;
  /** Highest ROUGE-L F-measure against the pool (0 for an empty pool). */
  maxSimilarity: number;
  /** The `topK` highest-scoring pool instructions, score descending, ties in pool order. */
  mostSimilar: SimilarInstruction[];
  /** Mean score over the whole pool at that moment, as `np.mean` computes it (0 for an empty pool). */
  avgSimilarity: number;
}

/** Settings of the gate; all optional. */
export interface GateOptions {
  /** Rejection threshold (default 0.7). */
  threshold?: number;
  /** How many most similar instructions to report (default 10). */
  topK?: number;
  /** `auto`: WebAssembly SIMD when the runtime has it; `js`: the plain JavaScript kernel (tests, benchmarks). */
  kernel?: 'auto' | 'js';
  /**
   * A further check, in order, on each candidate the threshold lets through (`position` in the texts
   * given): a reason rejects it, so that it neither joins the pool nor counts for the candidates after it;
   * null admits it. (The Filter stage's near-duplicate gate.)
   */
  veto?: Veto;
}

/** See `GateOptions.veto`. */
export type Veto = (position: number) => string | null;

/** `GateOptions` checked and with their defaults. */
export interface GateSettings {
  threshold: number;
  topK: number;
  kernel: 'auto' | 'js';
  veto?: Veto;
}

/** Checks `options` and fills in the defaults; throws `RangeError` on a nonsensical threshold or top k. */
export function gateSettings(options: GateOptions): GateSettings {
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  const topK = options.topK ?? DEFAULT_TOP_K;
  if (!Number.isFinite(threshold)) throw new RangeError(`threshold must be a number, got ${threshold}`);
  if (!Number.isInteger(topK) || topK < 1)
    throw new RangeError(`topK must be a positive integer, got ${topK}`);
  return { threshold, topK, kernel: options.kernel ?? 'auto', veto: options.veto };
}

/** Candidates of one batch, tokenized. */
export interface Batch {
  texts: readonly string[];
  tokens: string[][];
  /** Token ids in the index's vocabulary; tokens it lacks get negative ids shared within the batch. */
  ids: Int32Array[];
}

/** Tokenizes `texts` and maps their tokens to the index's ids (prepare a batch after the previous one is committed). */
export function prepareBatch(index: RougeIndex, texts: readonly string[]): Batch {
  const unknown = new Map<string, number>();
  const tokens = texts.map(tokenize);
  const ids = tokens.map((list) => {
    const out = new Int32Array(list.length);
    for (let i = 0; i < list.length; i++) {
      const token = list[i] as string;
      let id = index.tokenId(token) ?? unknown.get(token);
      if (id === undefined) {
        id = -1 - unknown.size;
        unknown.set(token, id);
      }
      out[i] = id;
    }
    return out;
  });
  return { texts, tokens, ids };
}

/** The decision on one candidate of a batch. */
export interface Decision {
  accepted: boolean;
  /** Highest score against the pool and the batch's earlier accepted candidates. */
  max: number;
  /** Size of the pool it was compared with: the pool before the batch plus `inBatch.length`. */
  size: number;
  /** Its scores against the batch's candidates accepted before it, in order. */
  inBatch: Float64Array;
  /** The veto's reason, when one rejected it. */
  vetoed?: string;
}

/**
 * Decides a batch in order from each candidate's `highest` score against the pool before the batch
 * (`documents` instructions): each is also compared with the batch's candidates accepted before it
 * when `grow` (the gate adds them to the pool), and rejected when its highest score exceeds `threshold`
 * or `veto` (given the candidate's place in the batch) rejects it. With a `limit`, deciding stops at the
 * candidate that brings the accepted ones to `limit`: the decisions are then those of a prefix of the batch.
 */
export function decideBatch(
  batch: Batch,
  highest: ArrayLike<number>,
  documents: number,
  threshold: number,
  grow: boolean,
  veto?: (candidate: number) => string | null,
  limit = Number.POSITIVE_INFINITY,
): Decision[] {
  // The batch's ids, those the index lacks (negative) moved past the others, so that they match too.
  let known = 0;
  let total = 0;
  for (const ids of batch.ids) {
    total += ids.length;
    for (const id of ids) if (id >= known) known = id + 1;
  }
  const shift = (ids: Int32Array) => ids.map((id) => (id >= 0 ? id : known - 1 - id));
  // The candidates accepted so far in the batch, as sequences for the LCS kernel.
  const accepted = { tokens: new Int32Array(total), offsets: new Int32Array(batch.ids.length + 1) };
  let count = 0;
  let idLimit = 0;
  const lcs = new Int32Array(batch.ids.length);
  const decisions: Decision[] = [];
  let acceptedCount = 0;
  for (let c = 0; c < batch.ids.length && acceptedCount < limit; c++) {
    const original = batch.ids[c] as Int32Array;
    const ids = shift(original);
    const inBatch = new Float64Array(count);
    let max = highest[c] as number;
    if (count > 0) {
      lcsAgainst(accepted, idLimit, ids, 0, count, lcs);
      for (let j = 0; j < count; j++) {
        const length = (accepted.offsets[j + 1] as number) - (accepted.offsets[j] as number);
        const score = fMeasure(lcs[j] as number, ids.length, length);
        inBatch[j] = score;
        if (score > max) max = score;
      }
    }
    const vetoed = max > threshold ? null : (veto?.(c) ?? null);
    const decision: Decision = {
      accepted: !(max > threshold) && vetoed === null,
      max,
      size: documents + count,
      inBatch,
    };
    if (vetoed !== null) decision.vetoed = vetoed;
    if (decision.accepted) acceptedCount++;
    if (grow && decision.accepted) {
      const at = accepted.offsets[count] as number;
      accepted.tokens.set(ids, at);
      accepted.offsets[++count] = at + ids.length;
      for (const id of ids) if (id >= idLimit) idLimit = id + 1;
    }
    decisions.push(decision);
  }
  return decisions;
}

/** Adds the batch's accepted candidates to the index, in order. */
export function commitBatch(index: RougeIndex, batch: Batch, decisions: readonly Decision[]): void {
  decisions.forEach((decision, c) => {
    if (decision.accepted) {
      index.addTokenized(batch.texts[c] as string, batch.tokens[c] as string[], batch.ids[c]);
    }
  });
}

/** A shard's `finish` over the pool's instructions from `from` on. */
export interface ShardPart {
  from: number;
  scores: ShardScores;
}

/**
 * The batch's results from its decisions and the shards' scores, the shards covering each candidate's
 * pool in consecutive ranges, in order (the last one given the scores against the batch's accepted
 * candidates). Accepted candidates must be committed to `index` already (their texts are looked up there).
 */
export function mergeBatch(
  index: RougeIndex,
  batch: Batch,
  decisions: readonly Decision[],
  shards: readonly ShardPart[],
  topK: number,
): GateResult[] {
  const top = new TopK();
  return decisions.map((decision, c) => {
    const { size } = decision;
    top.reset(Math.min(topK, size));
    let floor = top.floor;
    // Offered in pool order among equal scores: shards in order, each best-first with ties in pool order.
    for (const { scores } of shards) {
      for (let i = c * scores.k; i < c * scores.k + (scores.counts[c] as number); i++) {
        const score = scores.scores[i] as number;
        if (score > floor) floor = top.offer(score, scores.positions[i] as number);
      }
    }
    const parts: PairwisePart[] = shards.map(({ from, scores }) => ({
      from,
      to: scores.ends[c] as number,
      values: scores.sums.subarray(scores.sumStarts[c], scores.sumStarts[c + 1]),
    }));
    const mostSimilar: SimilarInstruction[] = [];
    for (let i = 0; i < top.filled; i++) {
      const position = top.positions[i] as number;
      mostSimilar.push({ instruction: index.text(position), position, score: top.scores[i] as number });
    }
    const result: GateResult = {
      instruction: batch.texts[c] as string,
      accepted: decision.accepted,
      maxSimilarity: decision.max,
      mostSimilar,
      avgSimilarity: size > 0 ? joinPairwise(size, parts) / size : 0,
    };
    if (decision.vetoed !== undefined) result.vetoed = decision.vetoed;
    return result;
  });
}

const shards = new WeakMap<RougeIndex, Partial<Record<'auto' | 'js', PoolShard>>>();

/** The in-process shard of `index` (kept, so that its kernel's copy of the pool is updated, not redone). */
function localShard(index: RougeIndex, kernel: 'auto' | 'js'): PoolShard {
  let kept = shards.get(index);
  if (kept === undefined) {
    kept = {};
    shards.set(index, kept);
  }
  kept[kernel] ??= new PoolShard(index.tokenPool, kernel);
  return kept[kernel];
}

/**
 * Runs the gate over `texts` in order, in-process, adding each accepted candidate to the index when
 * `commit` is true. `gate()` and `RougeIndex.score()` are the public forms.
 */
export function runGate(
  index: RougeIndex,
  texts: readonly string[],
  options: GateOptions,
  commit: boolean,
): GateResult[] {
  const settings = gateSettings(options);
  const shard = localShard(index, settings.kernel);
  const results: GateResult[] = [];
  for (let start = 0; start < texts.length; start += BATCH) {
    const batch = prepareBatch(index, texts.slice(start, start + BATCH));
    const documents = index.size;
    const highest = shard.begin(batch.ids, 0, documents, settings.topK);
    const { veto } = settings;
    const decisions = decideBatch(
      batch,
      highest,
      documents,
      settings.threshold,
      commit,
      veto && ((c) => veto(start + c)),
    );
    if (commit) commitBatch(index, batch, decisions);
    const scores = shard.finish(
      decisions.map((decision) => decision.size),
      settings.topK,
      decisions.map((decision) => decision.inBatch),
    );
    results.push(...mergeBatch(index, batch, decisions, [{ from: 0, scores }], settings.topK));
  }
  return results;
}
