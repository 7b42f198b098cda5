/**
 * The gate split across processes that share nothing but stored objects (the state machine's shard
 * Lambdas): the same four steps as `runGate` (see `scoring.ts`), with the whole iteration as one batch.
 * 1. each shard scores the candidates against its range of the pool as committed (`shardHighest`);
 * 2. one step takes each candidate's highest over the shards (`highestOver`) and decides in order with
 *    `decideBatch` (comparing each with the iteration's earlier accepted candidates directly), which
 *    fixes each one's pool size;
 * 3. each shard scores the decided candidates again and returns their top k and its share of their
 *    pairwise sums for those sizes (`shardScores`);
 * 4. one step merges the shards' parts and the scores against the iteration's accepted candidates
 *    (`tailScores`, the pool's last range) with `mergeBatch`.
 * Decisions, scores, top k and means are those of `runGate` on the same pool and candidates: a batch of
 * the whole iteration decides as its batches of `BATCH` do (each candidate against the pool before it
 * and the accepted ones before it, in order), and every score and pairwise share is computed by the
 * same functions over the same positions. A shard scans twice (the pool's scores between the two steps
 * would not fit anywhere): twice the pair work of one pass, in parallel.
 */
import { pairwisePart } from './mean.ts';
import type { RougeIndex } from './rouge-index.ts';
import { BATCH, type Decision, prepareBatch } from './scoring.ts';
import { emptyScores, PoolShard, type ShardScores, TopK } from './shard.ts';

/** `[from, to)` bounds of `shards` consecutive ranges of `total` positions as equal as can be. */
export function splitRange(total: number, shards: number): number[] {
  const count = Math.max(1, Math.min(shards, total));
  return Array.from({ length: count + 1 }, (_, s) => Math.floor((total * s) / count));
}

/**
 * Each of `texts`' highest ROUGE-L F-measure against `index`'s instructions `[from, to)` (local
 * positions): step 1, in batches of `BATCH` (the kernel holds a batch's scores, not the iteration's).
 */
export function shardHighest(
  index: RougeIndex,
  from: number,
  to: number,
  texts: readonly string[],
  kernel: 'auto' | 'js' = 'auto',
): Float64Array {
  const shard = new PoolShard(index.tokenPool, kernel);
  const highest = new Float64Array(texts.length);
  for (let start = 0; start < texts.length; start += BATCH) {
    const batch = prepareBatch(index, texts.slice(start, start + BATCH));
    highest.set(shard.begin(batch.ids, from, to, 1), start);
  }
  return highest;
}

/** Each candidate's highest score over all the shards' (step 2's input). */
export function highestOver(parts: readonly ArrayLike<number>[], count: number): Float64Array {
  const highest = new Float64Array(count);
  for (const part of parts) {
    if (part.length !== count) throw new RangeError(`a shard scored ${part.length} of ${count} candidates`);
    for (let c = 0; c < count; c++)
      if ((part[c] as number) > (highest[c] as number)) highest[c] = part[c] as number;
  }
  return highest;
}

/**
 * Step 3: the top `k` of `texts` over `index`'s instructions `[from, to)` (local positions, `offset` the
 * position of the index's first instruction in the whole pool) and the range's share of each one's
 * pairwise sum over its pool of `sizes[c]` instructions, in the whole pool's positions.
 */
export function shardScores(
  index: RougeIndex,
  { from, to, offset }: { from: number; to: number; offset: number },
  texts: readonly string[],
  sizes: readonly number[],
  k: number,
  kernel: 'auto' | 'js' = 'auto',
): ShardScores {
  const shard = new PoolShard(index.tokenPool, kernel, offset);
  const parts: ShardScores[] = [];
  for (let start = 0; start < texts.length; start += BATCH) {
    const batch = prepareBatch(index, texts.slice(start, start + BATCH));
    shard.begin(batch.ids, from, to, k);
    parts.push(shard.finish(sizes.slice(start, start + BATCH), k));
  }
  return concatScores(parts, k);
}

/**
 * The scores of each decided candidate against the iteration's candidates accepted before it, as a
 * shard of the positions after the pool as committed (`from` on): what `PoolShard.finish` takes as its
 * `tails`, for step 4.
 */
export function tailScores(decisions: readonly Decision[], from: number, k: number): ShardScores {
  const result = emptyScores(decisions.length, k);
  const sums: number[] = [];
  const top = new TopK();
  decisions.forEach(({ inBatch, size }, c) => {
    top.reset(k);
    let floor = top.floor;
    inBatch.forEach((score, j) => {
      if (score > floor) floor = top.offer(score, from + j);
    });
    result.counts[c] = top.filled;
    result.scores.set(top.scores.subarray(0, top.filled), c * k);
    result.positions.set(top.positions.subarray(0, top.filled), c * k);
    result.ends[c] = from + inBatch.length;
    pairwisePart(inBatch, size, from, from + inBatch.length, sums);
    result.sumStarts[c + 1] = sums.length;
  });
  result.sums = Float64Array.from(sums);
  return result;
}

/** The parts of consecutive batches of candidates as one. */
function concatScores(parts: readonly ShardScores[], k: number): ShardScores {
  const count = parts.reduce((sum, part) => sum + part.counts.length, 0);
  const result = emptyScores(count, k);
  result.sums = new Float64Array(parts.reduce((sum, part) => sum + part.sums.length, 0));
  let c = 0;
  let sumAt = 0;
  for (const part of parts) {
    result.counts.set(part.counts, c);
    result.positions.set(part.positions, c * k);
    result.scores.set(part.scores, c * k);
    result.ends.set(part.ends, c);
    for (let i = 1; i < part.sumStarts.length; i++) {
      result.sumStarts[c + i] = sumAt + (part.sumStarts[i] as number);
    }
    result.sums.set(part.sums, sumAt);
    sumAt += part.sums.length;
    c += part.counts.length;
  }
  return result;
}

/** `ShardScores` as JSON (numbers round-trip exactly through JSON). */
export function scoresToJson(scores: ShardScores): string {
  return JSON.stringify({
    k: scores.k,
    counts: Array.from(scores.counts),
    positions: Array.from(scores.positions),
    scores: Array.from(scores.scores),
    ends: Array.from(scores.ends),
    sumStarts: Array.from(scores.sumStarts),
    sums: Array.from(scores.sums),
  });
}

/** `ShardScores` from `scoresToJson`'s text. */
export function scoresFromJson(text: string): ShardScores {
  const raw = JSON.parse(text) as Record<keyof ShardScores, number[]> & { k: number };
  return {
    k: raw.k,
    counts: Int32Array.from(raw.counts),
    positions: Int32Array.from(raw.positions),
    scores: Float64Array.from(raw.scores),
    ends: Int32Array.from(raw.ends),
    sumStarts: Int32Array.from(raw.sumStarts),
    sums: Float64Array.from(raw.sums),
  };
}
