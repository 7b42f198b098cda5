import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  nearDuplicateGate,
  nearestPlain,
  normalized,
  searchRows,
  VectorIndex,
  VectorIndexInvalid,
} from '../../../functions/shared/engine/vector-index.ts';
import { createRng } from '../../../functions/shared/random.ts';
import { renderVectorKernelModule, VECTOR_KERNEL_MODULE } from '../../../infra/tools/assemble-kernel.ts';

/** Seeded unit vectors, some of them negative everywhere (so that the best cosine can be below 0). */
function randomVectors(n: number, dimensions: number, seed: string): Float32Array[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () =>
    normalized(Array.from({ length: dimensions }, () => rng.next() - 0.5)),
  );
}

/** The nearest row by a double-precision dot product: what the index must find. */
function reference(rows: readonly Float32Array[], query: Float32Array): { row: number; score: number } {
  let best = { row: -1, score: Number.NEGATIVE_INFINITY };
  rows.forEach((row, j) => {
    let score = 0;
    for (let k = 0; k < row.length; k++) score += (row[k] as number) * (query[k] as number);
    if (score > best.score) best = { row: j, score };
  });
  return best;
}

function indexOf(vectors: readonly Float32Array[], model = 'test'): VectorIndex {
  const index = new VectorIndex(model, vectors[0]?.length ?? 0);
  vectors.forEach((vector, i) => {
    index.add(`instruction ${i}`, vector);
  });
  return index;
}

describe('the vector index', () => {
  it.each([
    [256, 7],
    [100, 5],
    [1024, 9],
    [6, 3],
  ])('finds the exact nearest pool vector by cosine (%i dimensions, %i queries)', (dimensions, queries) => {
    const pool = randomVectors(700, dimensions, `pool-${dimensions}`);
    const asked = randomVectors(queries, dimensions, `queries-${dimensions}`);
    const index = indexOf(pool);

    const found = index.nearest(asked);

    asked.forEach((query, i) => {
      const expected = reference(pool, query);
      expect(found[i]?.row).toBe(expected.row);
      expect(found[i]?.score).toBeCloseTo(expected.score, 5);
    });
  });

  it('finds the same rows with the WebAssembly kernel and the plain loop', () => {
    const pool = randomVectors(333, 64, 'pool');
    const rows = new Float32Array(pool.length * 64);
    pool.forEach((vector, j) => {
      rows.set(vector, j * 64);
    });
    const queries = randomVectors(11, 64, 'queries');

    const kernel = searchRows(rows, pool.length, 64, queries);
    const plain = nearestPlain(rows, pool.length, 64, queries);

    expect(kernel.map((hit) => hit.row)).toEqual(plain.map((hit) => hit.row));
    kernel.forEach((hit, i) => {
      expect(hit.score).toBeCloseTo(plain[i]?.score ?? Number.NaN, 5);
    });
  });

  it('finds a pool vector itself with cosine 1, and nothing in an empty pool', () => {
    const pool = randomVectors(50, 32, 'pool');
    const index = indexOf(pool);

    const [self] = index.nearest([pool[17] as Float32Array]);
    const [none] = new VectorIndex('test', 32).nearest([pool[0] as Float32Array]);

    expect(self).toEqual({ row: 17, score: expect.closeTo(1, 6) });
    expect(none).toEqual({ row: -1, score: Number.NEGATIVE_INFINITY });
  });

  it('reads back what it wrote: model, vectors, instructions and how far they follow the ROUGE-L index', () => {
    const index = indexOf(randomVectors(40, 24, 'pool'), 'bedrock:amazon.titan-embed-text-v2:0');
    index.synced = 41;

    const read = VectorIndex.fromBuffer(index.toBuffer());

    expect(read.model).toBe('bedrock:amazon.titan-embed-text-v2:0');
    expect(read.dimensions).toBe(24);
    expect(read.synced).toBe(41);
    expect(read.instructions).toEqual(index.instructions);
    expect(Array.from(read.rows)).toEqual(Array.from(index.rows));
    expect(read.vectorOf('instruction 3')).toEqual(index.vectorOf('instruction 3'));
  });

  it('refuses a truncated or foreign object', () => {
    const bytes = indexOf(randomVectors(3, 8, 'pool')).toBuffer();

    expect(() => VectorIndex.fromBuffer(bytes.subarray(0, bytes.length - 4))).toThrow(VectorIndexInvalid);
    expect(() => VectorIndex.fromBuffer(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]))).toThrow(
      VectorIndexInvalid,
    );
  });
});

describe('the near-duplicate gate', () => {
  const axis = (i: number, lean = 0) => {
    const vector = new Float32Array(8);
    vector[i] = 1;
    vector[(i + 1) % 8] = lean;
    return vector;
  };

  it('rejects a candidate whose cosine to a pool instruction is above the threshold, naming it', () => {
    const index = new VectorIndex('test', 8);
    index.add('Write a poem about the sea.', axis(0));
    index.add('Sort these numbers.', axis(3));

    const [near, far] = nearDuplicateGate(
      index,
      [
        { instruction: 'Compose a poem about the ocean.', vector: axis(0, 0.2) },
        { instruction: 'Name a river.', vector: axis(5) },
      ],
      0.9,
    );

    expect(near).toEqual({
      accepted: false,
      nearest: {
        instruction: 'Write a poem about the sea.',
        score: expect.closeTo(1 / Math.hypot(1, 0.2), 6),
      },
    });
    expect(far?.accepted).toBe(true);
    expect(index.instructions).toEqual([
      'Write a poem about the sea.',
      'Sort these numbers.',
      'Name a river.',
    ]);
  });

  it('compares each candidate with those accepted before it in the batch, not with rejected ones', () => {
    const index = new VectorIndex('test', 8);
    index.add('Pool instruction.', axis(7));

    const results = nearDuplicateGate(
      index,
      [
        { instruction: 'First.', vector: axis(2) },
        { instruction: 'First, again.', vector: axis(2, 0.1) },
        // Cosine 0.91 to the pool instruction: rejected.
        { instruction: 'Close to the pool.', vector: axis(7, 0.45) },
        // Cosine 0.95 to the rejected one, 0.74 to the pool instruction: accepted.
        { instruction: 'Close to the rejected one only.', vector: axis(7, 0.9) },
      ],
      0.9,
    );

    expect(results.map((result) => result.accepted)).toEqual([true, false, false, true]);
    expect(results[1]?.nearest?.instruction).toBe('First.');
    expect(results[2]?.nearest?.instruction).toBe('Pool instruction.');
    expect(results[3]?.nearest).toEqual({
      instruction: 'Pool instruction.',
      score: expect.closeTo(1 / Math.hypot(1, 0.9), 6),
    });
  });

  it('keeps a candidate exactly at the threshold (strictly above rejects)', () => {
    const index = new VectorIndex('test', 8);
    index.add('Pool instruction.', axis(1));

    const [same] = nearDuplicateGate(index, [{ instruction: 'Same.', vector: axis(1) }], 1);

    expect(same?.accepted).toBe(true);
  });
});

describe('the vectors kernel', () => {
  it('is vectors.wat as wabt assembles it (run `npm run build:kernel` after editing the WAT)', async () => {
    expect(await readFile(VECTOR_KERNEL_MODULE, 'utf8')).toBe(await renderVectorKernelModule());
  });
});
