import { describe, expect, it } from 'vitest';
import {
  type GateResult,
  gate,
  RougeIndex,
  RougeIndexInvalid,
  scoreCandidate,
} from '../../../functions/shared/engine/gate.ts';
import { wasmSimdAvailable } from '../../../functions/shared/engine/lcs-wasm.ts';
import {
  commitBatch,
  decideBatch,
  mergeBatch,
  prepareBatch,
} from '../../../functions/shared/engine/scoring.ts';
import { PoolShard } from '../../../functions/shared/engine/shard.ts';
import { workload } from '../../support/gate-workload.ts';
import { referenceGate, referenceScore } from '../../support/rouge-reference.ts';

/** The parts of a result compared bit for bit. */
const summary = (result: GateResult) => ({
  instruction: result.instruction,
  accepted: result.accepted,
  max: result.maxSimilarity,
  mean: result.avgSimilarity,
  top: result.mostSimilar.map(({ instruction, position, score }) => `${score} ${position} ${instruction}`),
});

describe('gate', () => {
  it('runs on WebAssembly SIMD here', () => {
    expect(wasmSimdAvailable()).toBe(true);
  });

  for (const kernel of ['auto', 'js'] as const) {
    it(`agrees with the reference DP on every decision, max, top 10 and mean (${kernel} kernel)`, () => {
      for (const seed of ['1', '2', '3']) {
        const { pool, candidates } = workload(seed, 40, 300);

        const fast = gate(RougeIndex.from(pool), candidates, { kernel });
        const slow = referenceGate(pool, candidates);

        expect(fast.map(summary)).toEqual(slow.map(summary));
        const accepted = fast.filter((result) => result.accepted).length;
        expect(accepted).toBeGreaterThan(0);
        expect(accepted).toBeLessThan(candidates.length);
      }
    });
  }

  it('agrees with the reference DP on a larger pool of short instructions', () => {
    // Enough instructions for the gate to look scores up in a table instead of dividing.
    const { pool, candidates } = workload('short', 2500, 60, true);

    const fast = gate(RougeIndex.from(pool), candidates);
    const slow = referenceGate(pool, candidates);

    expect(fast.map(summary)).toEqual(slow.map(summary));
  });

  it('keeps a candidate whose highest score is exactly the threshold and rejects one just above', () => {
    // LCS 7 of 10 and 10 tokens.
    const exactly = scoreCandidate(RougeIndex.from(['a b c d e f g x y z']), 'a b c d e f g h i j', {
      threshold: 0.7,
    });
    // LCS 7 of 9 and 11 tokens.
    const above = scoreCandidate(RougeIndex.from(['a b c d e f g x y z w']), 'a b c d e f g h i', {
      threshold: 0.7,
    });

    expect(exactly?.maxSimilarity).toBe(0.7);
    expect(exactly?.accepted).toBe(true);
    // LCS 7 of 9 and 11 tokens: 0.7000000000000001 in floating point, as in Python.
    expect(above?.maxSimilarity).toBe(0.7000000000000001);
    expect(above?.accepted).toBe(false);
  });

  it('compares each candidate with the candidates accepted before it in the same call', () => {
    const index = RougeIndex.from(['tell me a joke about cats']);

    const results = gate(index, [
      'explain how rainbows form in the sky',
      'explain how rainbows form in the sky!',
    ]);

    expect(results.map((result) => result.accepted)).toEqual([true, false]);
    expect(results[1]?.maxSimilarity).toBe(1);
    expect(results[1]?.mostSimilar[0]?.instruction).toBe('explain how rainbows form in the sky');
    expect(index.size).toBe(2);
  });

  it('lets a veto reject what the threshold passes, leaving it out of the pool for the candidates after it', () => {
    const index = RougeIndex.from(['tell me a joke about cats']);
    const asked: number[] = [];

    const results = gate(
      index,
      [
        'explain how rainbows form in the sky',
        'tell me a joke about cats please',
        'explain how rainbows form in the sky!',
        'name three rivers in europe',
      ],
      {
        veto: (position) => {
          asked.push(position);
          return position === 0 ? 'near-duplicate' : null;
        },
      },
    );

    // Asked only about what the threshold passed, in order; the one it vetoed is no pool instruction,
    // so its near-copy after it is accepted.
    expect(asked).toEqual([0, 2, 3]);
    expect(results.map((result) => [result.accepted, result.vetoed])).toEqual([
      [false, 'near-duplicate'],
      [false, undefined],
      [true, undefined],
      [true, undefined],
    ]);
    expect(results[2]?.maxSimilarity).toBeLessThan(0.7);
    expect(index.instructions).toEqual([
      'tell me a joke about cats',
      'explain how rainbows form in the sky!',
      'name three rivers in europe',
    ]);
  });

  it('reports the 10 best in score order with ties in pool order, and the mean over the whole pool', () => {
    const pool = ['b c', 'x y', 'a b', 'q', 'a b', ...Array.from({ length: 10 }, (_, i) => `z${i}`)];
    const index = RougeIndex.from(pool);

    const result = scoreCandidate(index, 'a b');

    expect(result.mostSimilar.map((entry) => entry.instruction)).toEqual([
      'a b',
      'a b',
      'b c',
      'x y',
      'q',
      'z0',
      'z1',
      'z2',
      'z3',
      'z4',
    ]);
    expect(result.mostSimilar.map((entry) => entry.score)).toEqual([1, 1, 0.5, 0, 0, 0, 0, 0, 0, 0]);
    expect(result.avgSimilarity).toBe(2.5 / 15);
  });

  it('scores a single candidate without adding it, so the caller can add it after its own checks', () => {
    const index = RougeIndex.from(['sort a list of numbers']);

    const result = index.score('sort a list of names');

    expect(result.accepted).toBe(false);
    expect(index.size).toBe(1);
    index.add('sort a list of names');
    expect(index.score('sort a list of names').maxSimilarity).toBe(1);
  });

  it('accepts a candidate without tokens, scoring 0 against everything', () => {
    const index = RougeIndex.from(['write a haiku', 'name a color']);

    const [result] = gate(index, ['写一首俳句']);

    expect(result).toMatchObject({ accepted: true, maxSimilarity: 0, avgSimilarity: 0 });
    expect(index.size).toBe(3);
  });

  it('accepts anything against an empty pool', () => {
    const [result] = gate(new RougeIndex(), ['write a haiku']);

    expect(result).toEqual({
      instruction: 'write a haiku',
      accepted: true,
      maxSimilarity: 0,
      mostSimilar: [],
      avgSimilarity: 0,
    });
  });

  it('matches the reference for candidates of 32, 33, 64, 65 and 100 tokens', () => {
    const words = (n: number, offset = 0) =>
      Array.from({ length: n }, (_, i) => `t${(i * 7 + offset) % 40}`).join(' ');
    const pool = [words(32), words(33, 3), words(64, 1), words(70, 2), words(10)];
    const candidates = [words(32, 1), words(33), words(64, 2), words(65, 5), words(100, 3)];

    for (const kernel of ['auto', 'js'] as const) {
      const fast = candidates.map((candidate) =>
        scoreCandidate(RougeIndex.from(pool), candidate, { kernel }),
      );
      const slow = candidates.map((candidate) => referenceScore(pool, candidate));
      expect(fast.map(summary)).toEqual(slow.map(summary));
    }
  });

  it('matches the reference against instructions of hundreds of tokens and of over a thousand lengths', () => {
    // 1,009 distinct lengths: more rows than the kernel's score tables take, so the JavaScript kernel.
    const words = (n: number, offset = 0) =>
      Array.from({ length: n }, (_, i) => `t${(i * 7 + offset) % 40}`).join(' ');
    const long = [words(300), words(40, 1), words(12, 2)];
    const many = Array.from({ length: 1009 }, (_, n) => words(n, n));
    const candidates = [words(10, 3), words(30), words(60, 1)];

    for (const pool of [long, many]) {
      const fast = gate(RougeIndex.from(pool), candidates);
      const slow = referenceGate(pool, candidates);
      expect(fast.map(summary)).toEqual(slow.map(summary));
    }
  });

  it('gives the same results with the pool split into shards, merged, as in one piece', () => {
    const { pool, candidates } = workload('shards', 500, 400);
    const whole = gate(RougeIndex.from(pool), candidates);

    const index = RougeIndex.from(pool);
    const shards = [0, 1, 2].map(() => new PoolShard(index.tokenPool));
    const merged: GateResult[] = [];
    for (let start = 0; start < candidates.length; start += 64) {
      const batch = prepareBatch(index, candidates.slice(start, start + 64));
      const documents = index.size;
      const bounds = [0, 97, Math.floor(documents / 2), documents];
      const highest = shards.map((shard, s) =>
        shard.begin(batch.ids, bounds[s] as number, bounds[s + 1] as number, 10),
      );
      const best = batch.ids.map((_, c) => Math.max(...highest.map((scores) => scores[c] as number)));
      const decisions = decideBatch(batch, best, documents, 0.7, true);
      commitBatch(index, batch, decisions);
      const sizes = decisions.map((decision) => decision.size);
      const tails = decisions.map((decision) => decision.inBatch);
      const parts = shards.map((shard, s) => ({
        from: bounds[s] as number,
        scores: shard.finish(sizes, 10, s === shards.length - 1 ? tails : undefined),
      }));
      merged.push(...mergeBatch(index, batch, decisions, parts, 10));
    }

    expect(merged.map(summary)).toEqual(whole.map(summary));
  });

  it('rejects a nonsensical threshold or top-k', () => {
    const index = RougeIndex.from(['a b c']);

    expect(() => gate(index, ['a'], { threshold: Number.NaN })).toThrow(RangeError);
    expect(() => gate(index, ['a'], { topK: 0 })).toThrow(RangeError);
  });
});

describe('RougeIndex persistence', () => {
  it('round-trips through toBuffer and fromBuffer with the same texts, tokens and decisions', () => {
    const { pool, candidates } = workload('persist', 200, 100);
    const original = RougeIndex.from(pool);

    const restored = RougeIndex.fromBuffer(original.toBuffer());

    expect(restored.size).toBe(original.size);
    expect(restored.instructions).toEqual(pool);
    expect(restored.vocabularySize).toBe(original.vocabularySize);
    expect(restored.maxLength).toBe(original.maxLength);
    for (let i = 0; i < pool.length; i++)
      expect([...restored.tokenIds(i)]).toEqual([...original.tokenIds(i)]);
    expect(gate(restored, candidates).map(summary)).toEqual(gate(original, candidates).map(summary));
    expect(restored.size).toBe(original.size);
  });

  it('keeps texts with any characters and instructions without tokens', () => {
    const texts = ['line one\nline two', '"quoted" \u0000 nul', '写诗', '', 'emoji 🎉 ok'];

    const restored = RougeIndex.fromBuffer(RougeIndex.from(texts).toBuffer());

    expect(restored.instructions).toEqual(texts);
    expect(restored.tokenIds(2).length).toBe(0);
  });

  it('refuses a buffer that is not an index, of another version, or truncated', () => {
    const buffer = RougeIndex.from(['write a haiku about rain']).toBuffer();
    const otherVersion = buffer.slice();
    new DataView(otherVersion.buffer).setUint32(4, 2, true);

    expect(() =>
      RougeIndex.fromBuffer(new TextEncoder().encode('{"instructions": ["not an index, but long enough"]}')),
    ).toThrow(/bad magic/);
    expect(() => RougeIndex.fromBuffer(otherVersion)).toThrow(/version 2 is not supported/);
    expect(() => RougeIndex.fromBuffer(buffer.subarray(0, buffer.length - 1))).toThrow(RougeIndexInvalid);
  });
});
