/**
 * One shard of the gate: scores a batch of candidates against a range of the pool, in two steps around
 * the batch's decisions. `begin` scans the range and returns each candidate's highest score over it,
 * which is all the decisions need; once they are made, each candidate's pool size (the pool before the
 * batch plus the batch's candidates accepted before it) is known, and `finish` returns its top k over
 * the range and the range's share of NumPy's pairwise sum of all its scores (see `splitPairwise`), whose
 * tree depends on that size. The gate runs one shard over the whole pool in-process; `selfinstruct
 * dedup` runs one per worker thread over consecutive ranges and merges them (`mergeBatch`).
 *
 * Candidates of 1–64 tokens go to the WebAssembly SIMD kernel (`lcs-wasm.ts`), which does all per-pair
 * work; longer ones, and all of them without SIMD or with `kernel: 'js'`, to the JavaScript kernel.
 */
import { lcsAgainst } from './lcs-js.ts';
import {
  LANES,
  type LaneBits,
  MAX_DISTINCT_LENGTHS,
  MAX_WASM_TOKENS,
  SLOT_LANES,
  WasmScanner,
} from './lcs-wasm.ts';
import { pairwisePart } from './mean.ts';
import { fillScoreTable, fMeasure } from './rouge.ts';
import type { TokenPool } from './token-pool.ts';

/** A shard's `finish`, per candidate, packed in flat arrays (cheap to post between threads). */
export interface ShardScores {
  /** Stride of `positions` and `scores`: the top k asked for. */
  k: number;
  /** Candidate c's best are `positions[c k .. c k + counts[c])` (pool positions), scores alike. */
  counts: Int32Array;
  positions: Int32Array;
  /** Descending; equal scores in pool order. */
  scores: Float64Array;
  /**
   * Where candidate c's part of its scores ends: the range's end, or past the scores given with `finish`
   * for the instructions after it (the shard at the end of the pool).
   */
  ends: Int32Array;
  /** Candidate c's share of its pairwise sum, over `[from, ends[c])`: `sums[sumStarts[c] .. sumStarts[c + 1])`. */
  sumStarts: Int32Array;
  sums: Float64Array;
}

/** Room for the `ShardScores` of `count` candidates' top `k`, with no sums yet. */
export function emptyScores(count: number, k: number): ShardScores {
  return {
    k,
    counts: new Int32Array(count),
    positions: new Int32Array(count * k),
    scores: new Float64Array(count * k),
    ends: new Int32Array(count),
    sumStarts: new Int32Array(count + 1),
    sums: new Float64Array(0),
  };
}

/**
 * Where a candidate's scores are between `begin` and `finish`: to be read from a slot of the WebAssembly
 * kernel, or computed already (JavaScript kernel).
 */
type Pending = { slot: number; lane: number } | { scores: Float64Array };

const NO_SCORES = new Float64Array(0);

/** The k highest scores offered, score descending, equal scores in the order offered. */
export class TopK {
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

/** Scores batches of candidates against ranges of a `TokenPool`. */
export class PoolShard {
  readonly #pool: TokenPool;
  readonly #scanner: WasmScanner | null;
  readonly #offset: number;
  #batch: { candidates: readonly Int32Array[]; from: number; to: number; pending: Pending[] } | null = null;

  /**
   * A shard of `pool`; `kernel: 'js'` keeps to the JavaScript kernel. `offset`: the position of `pool`'s
   * first instruction in the whole pool, when `pool` holds only a range of it (a shard Lambda's segments):
   * `finish` then reports positions, ends and pairwise shares in the whole pool's positions.
   */
  constructor(pool: TokenPool, kernel: 'auto' | 'js' = 'auto', offset = 0) {
    this.#pool = pool;
    this.#offset = offset;
    this.#scanner = kernel === 'js' ? null : WasmScanner.create(pool);
  }

  /**
   * Starts a batch: compares `candidates` (token ids; ids the pool lacks match nothing) with the pool's
   * instructions `[from, to)` and returns each one's highest ROUGE-L F-measure over them (0 when none).
   * `k` is the largest top k `finish` will be asked for.
   */
  begin(candidates: readonly Int32Array[], from: number, to: number, k: number): Float64Array {
    if (from < 0 || from > to || to > this.#pool.size)
      throw new RangeError(`no instructions [${from}, ${to})`);
    const highest = new Float64Array(candidates.length);
    const pending: Pending[] = [];
    const scanner = this.#pool.lengthsById.length <= MAX_DISTINCT_LENGTHS ? this.#scanner : null;
    if (scanner !== null) {
      const groups = scanGroups(candidates);
      const slots = groups.map(([, bits]) => (bits === 16 ? 2 : 1));
      scanner.begin(
        slots.reduce((sum, n) => sum + n, 0),
        k,
        to - from + candidates.length, // room for the scores `finish` may be given
      );
      let slot = 0;
      groups.forEach(([group, bits], g) => {
        const best = scanner.scan(
          slot,
          group.map((c) => candidates[c] as Int32Array),
          from,
          to,
          bits,
        );
        group.forEach((c, lane) => {
          highest[c] = best[lane] as number;
          pending[c] = { slot: slot + Math.floor(lane / SLOT_LANES), lane: lane % SLOT_LANES };
        });
        slot += slots[g] as number;
      });
    }
    candidates.forEach((ids, c) => {
      if (pending[c] !== undefined) return;
      const scores = this.#jsScores(ids, from, to);
      let best = 0;
      for (const score of scores) if (score > best) best = score;
      highest[c] = best;
      pending[c] = { scores };
    });
    this.#batch = { candidates, from, to, pending };
    return highest;
  }

  /**
   * Finishes the batch begun: for each candidate, whose pool holds `sizes[c]` instructions in all (this
   * shard's range being part of them), its `k` best over the range and its share of the pairwise sum.
   * The shard whose range ends the pool as it stood before the batch is given `tails`: each candidate's
   * scores against the batch's candidates accepted before it, the pool's instructions after the range
   * (so `sizes[c]` is the range's end plus `tails[c].length`), which it takes into its part.
   */
  finish(sizes: ArrayLike<number>, k: number, tails?: readonly Float64Array[]): ShardScores {
    const batch = this.#batch;
    if (batch === null) throw new Error('finish() without begin()');
    this.#batch = null;
    const { candidates, from, to } = batch;
    const offset = this.#offset;
    const result = emptyScores(candidates.length, k);
    const sums: number[] = [];
    const top = new TopK();
    const scanner = this.#scanner as WasmScanner;
    const pairwise = (start: number, n: number) => scanner.pairwise(start, n);
    const keep = (c: number, scores: Float64Array, positions: Int32Array, filled: number) => {
      result.counts[c] = filled;
      result.scores.set(scores.subarray(0, filled), c * k);
      for (let i = 0; i < filled; i++) result.positions[c * k + i] = (positions[i] as number) + offset;
    };
    batch.pending.forEach((where, c) => {
      const size = sizes[c] as number;
      const tail = tails?.[c] ?? NO_SCORES;
      const end = to + tail.length;
      if (tails !== undefined && offset + end !== size)
        throw new RangeError(`candidate ${c}: ${offset + end} of ${size} scores`);
      result.ends[c] = offset + end;
      if ('slot' in where) {
        const m = (candidates[c] as Int32Array).length;
        const filled = scanner.score(where.slot, where.lane, m, from, to, k, tail);
        const best = scanner.top(k);
        keep(c, best.scores, best.positions, filled);
        pairwisePart(scanner.scores(end - from), size, offset + from, offset + end, sums, pairwise);
      } else {
        const scores = new Float64Array(end - from);
        scores.set(where.scores);
        scores.set(tail, to - from);
        top.reset(k);
        let floor = top.floor;
        for (let d = from; d < end; d++) {
          const score = scores[d - from] as number;
          if (score > floor) floor = top.offer(score, d);
        }
        keep(c, top.scores, top.positions, top.filled);
        pairwisePart(scores, size, offset + from, offset + end, sums);
      }
      result.sumStarts[c + 1] = sums.length;
    });
    result.sums = Float64Array.from(sums);
    return result;
  }

  /**
   * Scores of a candidate against instructions `[from, to)` with the JavaScript kernel, looked up in a
   * table by instruction length when there are enough instructions to pay for building it.
   */
  #jsScores(ids: Int32Array, from: number, to: number): Float64Array {
    const pool = this.#pool;
    const { lengths } = pool.storage();
    const lcs = new Int32Array(to - from);
    lcsAgainst(pool.storage(), pool.idLimit, ids, from, to, lcs);
    const m = ids.length;
    const rows =
      to - from >= 4 * (m + 1) * Math.min(pool.maxLength + 1, 512) ? Math.min(pool.maxLength + 1, 512) : 0;
    const table = new Float64Array(rows * (m + 1));
    fillScoreTable(table, m, rows);
    const scores = new Float64Array(to - from);
    for (let d = from; d < to; d++) {
      const n = lengths[d] as number;
      const common = lcs[d - from] as number;
      scores[d - from] = n < rows ? (table[n * (m + 1) + common] as number) : fMeasure(common, m, n);
    }
    return scores;
  }
}

/**
 * The candidates the WebAssembly kernel takes (1–64 tokens), grouped into scans by lane width: each in
 * the narrowest lanes that hold it, except that a last, partial group of 16-bit lanes holding at most 16
 * joins the 32-bit lanes, where it costs nothing when they have room.
 */
function scanGroups(candidates: readonly Int32Array[]): [number[], LaneBits][] {
  const byBits: Record<LaneBits, number[]> = { 16: [], 32: [], 64: [] };
  candidates.forEach((ids, c) => {
    const m = ids.length;
    if (m > 0 && m <= MAX_WASM_TOKENS) byBits[m <= 16 ? 16 : m <= 32 ? 32 : 64].push(c);
  });
  const rest = byBits[16].length % LANES[16];
  if (rest > 0 && rest <= LANES[32]) byBits[32].push(...byBits[16].splice(-rest));
  const groups: [number[], LaneBits][] = [];
  for (const bits of [16, 32, 64] as const) {
    const list = byBits[bits];
    for (let start = 0; start < list.length; start += LANES[bits]) {
      groups.push([list.slice(start, start + LANES[bits]), bits]);
    }
  }
  return groups;
}
