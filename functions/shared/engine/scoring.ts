/**
 * The gate's engine: scores candidates against a `RougeIndex` exactly as the original does (same tokenizer,
 * LCS and floating-point operations; NumPy's pairwise summation for the mean), with bit-parallel LCS over
 * token ids (`lcs-wasm.ts`: 16 candidates at once with WebAssembly SIMD; `lcs-js.ts` without SIMD and
 * beyond 64 tokens) instead of a dynamic-programming table over strings.
 *
 * Pruning cannot help much: the mean needs every non-zero score, and nearly every pair shares a token
 * ("a", "the", "of"). A pool instruction sharing no token with the candidate costs only its scan, whose steps
 * are then no-ops, and its score is exactly 0.
 *
 * A batch scans up to 16 candidates against the pool as it stood before the batch, then decides them in
 * order, comparing each with the batch's earlier accepted candidates directly.
 */
import { lcsAgainstIndex } from './lcs-js.ts';
import { MAX_WASM_TOKENS, WASM_LANES, WasmLcsScanner, WIDE_LANES } from './lcs-wasm.ts';
import { pairwiseSum } from './mean.ts';
import { fMeasure, lcsLength, tokenize } from './rouge.ts';
import type { RougeIndex } from './rouge-index.ts';

/** The original's threshold: rejected when the highest ROUGE-L is strictly greater. */
export const DEFAULT_THRESHOLD = 0.7;
/** Most similar pool instructions reported per candidate, as the original records. */
export const DEFAULT_TOP_K = 10;

/** A pool instruction and its ROUGE-L F-measure with the candidate. */
export interface SimilarInstruction {
  instruction: string;
  score: number;
}

/** The gate's verdict on one candidate. */
export interface GateResult {
  /** The candidate, as given. */
  instruction: string;
  /** False iff `maxSimilarity > threshold`. */
  accepted: boolean;
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
}

interface Prepared {
  text: string;
  tokens: string[];
  /** Token ids; tokens unknown to the index get negative ids shared within the batch. */
  ids: Int32Array;
}

let scores = new Float64Array(1024);
const lcsScratch: Int32Array[] = [];

/**
 * Runs the gate over `texts` in order (in batches of 16), adding each accepted candidate to the index when
 * `commit` is true. `gate()` and `RougeIndex.score()` are the public forms.
 */
export function runGate(
  index: RougeIndex,
  texts: readonly string[],
  options: GateOptions,
  commit: boolean,
): GateResult[] {
  const settings = resolve(options);
  const results: GateResult[] = [];
  for (let start = 0; start < texts.length; start += WASM_LANES) {
    results.push(...runBatch(index, texts.slice(start, start + WASM_LANES), settings, commit));
  }
  return results;
}

interface Settings {
  threshold: number;
  topK: number;
  wasm: boolean;
}

function resolve(options: GateOptions): Settings {
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  const topK = options.topK ?? DEFAULT_TOP_K;
  if (!Number.isFinite(threshold)) throw new RangeError(`threshold must be a number, got ${threshold}`);
  if (!Number.isInteger(topK) || topK < 1)
    throw new RangeError(`topK must be a positive integer, got ${topK}`);
  return { threshold, topK, wasm: options.kernel !== 'js' };
}

function prepare(index: RougeIndex, texts: readonly string[]): Prepared[] {
  const unknown = new Map<string, number>();
  return texts.map((text) => {
    const tokens = tokenize(text);
    const ids = new Int32Array(tokens.length);
    tokens.forEach((token, i) => {
      let id = index.tokenId(token) ?? unknown.get(token);
      if (id === undefined) {
        id = -1 - unknown.size;
        unknown.set(token, id);
      }
      ids[i] = id;
    });
    return { text, tokens, ids };
  });
}

function runBatch(
  index: RougeIndex,
  texts: readonly string[],
  settings: Settings,
  commit: boolean,
): GateResult[] {
  const batch = prepare(index, texts);
  const documents = index.size;
  // Adding to the index only writes past `documents` (or into new arrays), so this view stays valid.
  const lengths = index.storage().lengths;

  // LCS of every candidate against the pool as it is now: one SIMD scan for those of at most 32 tokens,
  // one per 8 of 33–64 tokens, the JavaScript kernel for the rest (or for all without SIMD).
  const scanner = settings.wasm ? WasmLcsScanner.for(index) : null;
  const laneOf = new Int32Array(batch.length).fill(-1);
  const separate: (Int32Array | null)[] = batch.map(() => null);
  let counts: Uint8Array | null = null;
  if (scanner !== null) {
    const narrow: Int32Array[] = [];
    const wide: number[] = [];
    batch.forEach((candidate, i) => {
      const m = candidate.ids.length;
      if (m > 0 && m <= 32) {
        laneOf[i] = narrow.length;
        narrow.push(candidate.ids);
      } else if (m > 32 && m <= MAX_WASM_TOKENS) wide.push(i);
    });
    for (let start = 0; start < wide.length; start += WIDE_LANES) {
      const group = wide.slice(start, start + WIDE_LANES);
      const scanned = scanner.scan(
        group.map((i) => (batch[i] as Prepared).ids),
        documents,
      ).counts;
      group.forEach((i, lane) => {
        const out = scratchLcs(i, documents);
        for (let d = 0; d < documents; d++) {
          out[d] = (scanned[16 * d + 2 * lane] as number) + (scanned[16 * d + 2 * lane + 1] as number);
        }
        separate[i] = out;
      });
    }
    if (narrow.length > 0) counts = scanner.scan(narrow, documents).counts;
  }
  batch.forEach((candidate, i) => {
    if (laneOf[i] !== -1 || separate[i] !== null || candidate.ids.length === 0) return;
    const out = scratchLcs(i, documents);
    lcsAgainstIndex(index, candidate.ids, documents, out);
    separate[i] = out;
  });

  const accepted: Prepared[] = [];
  return batch.map((candidate, i) => {
    const m = candidate.ids.length;
    const size = documents + accepted.length;
    if (scores.length < size) scores = new Float64Array(Math.max(size, 2 * scores.length));
    const lane = laneOf[i] as number;
    const own = separate[i];
    const table = fTable(m, index.maxLength, documents);
    top.reset(Math.min(settings.topK, size));
    if (counts !== null && lane !== -1) fillFromCounts(counts, lane, m, lengths, documents, table);
    else if (own) fillFromLcs(own, m, lengths, documents, table);
    else fillZeros(documents);
    accepted.forEach((earlier, j) => {
      scores[documents + j] = fMeasure(lcsLength(candidate.ids, earlier.ids), m, earlier.ids.length);
    });

    const result = summarize(index, candidate.text, documents, size, settings.threshold);
    if (commit && result.accepted) {
      index.addTokenized(candidate.text, candidate.tokens);
      accepted.push(candidate);
    }
    return result;
  });
}

function scratchLcs(slot: number, documents: number): Int32Array {
  let out = lcsScratch[slot];
  if (out === undefined || out.length < documents) {
    out = new Int32Array(Math.max(documents, 2 * (out?.length ?? 512)));
    lcsScratch[slot] = out;
  }
  return out;
}

let table = new Float64Array(0);

/**
 * `fMeasure(lcs, m, n)` for every instruction length n ≤ `maxLength` and lcs ≤ m, at `n * (m + 1) + lcs`:
 * the same values, looked up instead of computed with three divisions per pair. Null when building it
 * would cost more than it saves (small pools) or the pool has very long instructions.
 */
function fTable(m: number, maxLength: number, documents: number): Float64Array | null {
  const entries = (maxLength + 1) * (m + 1);
  if (m === 0 || maxLength > 512 || documents < 4 * entries) return null;
  if (table.length < entries) table = new Float64Array(Math.max(entries, 2 * table.length));
  for (let n = 0; n <= maxLength; n++) {
    for (let lcs = 0; lcs <= m; lcs++) table[n * (m + 1) + lcs] = fMeasure(lcs, m, n);
  }
  return table;
}

/** The k highest scores offered, score descending, equal scores in the order offered (pool order). */
class TopK {
  scores = new Float64Array(0);
  positions = new Int32Array(0);
  filled = 0;
  /** Offer only scores strictly greater than this: nothing else can enter. */
  floor = Number.NEGATIVE_INFINITY;
  #k = 0;

  reset(k: number): void {
    if (this.scores.length < k) {
      this.scores = new Float64Array(k);
      this.positions = new Int32Array(k);
    }
    this.#k = k;
    this.filled = 0;
    this.floor = k > 0 ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }

  /** Inserts (score, position), dropping the lowest when full; returns the new floor. */
  offer(score: number, position: number): number {
    const k = this.#k;
    const scores = this.scores;
    const positions = this.positions;
    let at = this.filled < k ? this.filled++ : k - 1;
    while (at > 0 && (scores[at - 1] as number) < score) {
      scores[at] = scores[at - 1] as number;
      positions[at] = positions[at - 1] as number;
      at--;
    }
    scores[at] = score;
    positions[at] = position;
    if (this.filled === k) this.floor = scores[k - 1] as number;
    return this.floor;
  }
}

const top = new TopK();

// The candidate is rouge-score's target (length m), the pool instruction its prediction (length n).
// The fill loops also offer each score to `top`, saving a pass over the scores.
function fillFromCounts(
  counts: Uint8Array,
  lane: number,
  m: number,
  lengths: Int32Array,
  documents: number,
  lookup: Float64Array | null,
): void {
  const out = scores;
  let floor = top.floor;
  if (lookup !== null) {
    const stride = m + 1;
    for (let d = 0; d < documents; d++) {
      const score = lookup[(lengths[d] as number) * stride + (counts[(d << 4) + lane] as number)] as number;
      out[d] = score;
      if (score > floor) floor = top.offer(score, d);
    }
    return;
  }
  for (let d = 0; d < documents; d++) {
    const lcs = counts[(d << 4) + lane] as number;
    const score = lcs === 0 ? 0 : fMeasure(lcs, m, lengths[d] as number);
    out[d] = score;
    if (score > floor) floor = top.offer(score, d);
  }
}

function fillFromLcs(
  lcsOf: Int32Array,
  m: number,
  lengths: Int32Array,
  documents: number,
  lookup: Float64Array | null,
): void {
  const out = scores;
  let floor = top.floor;
  for (let d = 0; d < documents; d++) {
    const lcs = lcsOf[d] as number;
    const score =
      lookup !== null
        ? (lookup[(lengths[d] as number) * (m + 1) + lcs] as number)
        : lcs === 0
          ? 0
          : fMeasure(lcs, m, lengths[d] as number);
    out[d] = score;
    if (score > floor) floor = top.offer(score, d);
  }
}

function fillZeros(documents: number): void {
  scores.fill(0, 0, documents);
  let floor = top.floor;
  for (let d = 0; d < documents && 0 > floor; d++) floor = top.offer(0, d);
}

/** Offers `scores[from .. size)` to `top`, then reads off max, top k and mean, and decides. */
function summarize(
  index: RougeIndex,
  instruction: string,
  from: number,
  size: number,
  threshold: number,
): GateResult {
  let floor = top.floor;
  for (let d = from; d < size; d++) {
    const score = scores[d] as number;
    if (score > floor) floor = top.offer(score, d);
  }
  const mostSimilar: SimilarInstruction[] = [];
  for (let i = 0; i < top.filled; i++) {
    mostSimilar.push({ instruction: index.text(top.positions[i] as number), score: top.scores[i] as number });
  }
  const maxSimilarity = mostSimilar[0]?.score ?? 0;
  return {
    instruction,
    accepted: !(maxSimilarity > threshold),
    maxSimilarity,
    mostSimilar,
    avgSimilarity: size > 0 ? pairwiseSum(scores, 0, size) / size : 0,
  };
}
