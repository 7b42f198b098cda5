/**
 * The near-duplicate gate's vectors: every pool instruction's embedding (unit length, float32), in the
 * order the pool gained them, and exact nearest-neighbour search over them. Self-Instruct's step 4
 * removes near-duplicates "via embedding-based clustering"; here, as for ROUGE-L, a candidate is compared
 * with the pool and with every candidate accepted before it in the batch, and rejected when its highest
 * cosine is strictly above the threshold.
 *
 * Search is exact (every pool vector is scored): the WebAssembly SIMD kernel `vectors.wat` scores four
 * candidates against two pool vectors at a time, over a block of the pool that stays in the CPU's cache; a runtime without
 * WebAssembly SIMD gets the same loop in JavaScript (`nearestPlain`, also the benchmark's baseline).
 * The index persists as one object (`toBuffer`/`fromBuffer`): a Lambda loads the pool's vectors, never
 * recomputes them.
 */
import { SelfInstructError } from '../errors.ts';
import { type WasmApi, wasmSimdAvailable } from './lcs-wasm.ts';
import { VECTOR_KERNEL_WASM } from './vectors.wasm.ts';

/** A stored vector index that cannot be read (truncated, another format). */
export class VectorIndexInvalid extends SelfInstructError {}

/** The nearest row of a search: its position in the index and its cosine (-Infinity for an empty index). */
export interface Nearest {
  row: number;
  score: number;
}

const MAGIC = 'SIVX1';

/** Unit-length float32 copy of `vector` (all zeros stays all zeros: cosine 0 with everything). */
export function normalized(vector: ArrayLike<number>): Float32Array {
  let norm = 0;
  for (let i = 0; i < vector.length; i++) norm += (vector[i] as number) ** 2;
  norm = Math.sqrt(norm);
  const out = new Float32Array(vector.length);
  if (norm > 0) for (let i = 0; i < vector.length; i++) out[i] = (vector[i] as number) / norm;
  return out;
}

/** The embeddings of a pool's instructions by one embedding model. */
export class VectorIndex {
  #rows: Float32Array;
  #count = 0;
  readonly #instructions: string[] = [];
  readonly #positions = new Map<string, number>();

  /**
   * `model` is the embedder id the vectors come from; `synced` how many instructions of the pool's
   * ROUGE-L index the vectors account for (see `functions/filter/near-duplicates.ts`).
   */
  constructor(
    readonly model: string,
    readonly dimensions: number,
    public synced = 0,
  ) {
    this.#rows = new Float32Array(dimensions * 64);
  }

  get size(): number {
    return this.#count;
  }

  get instructions(): readonly string[] {
    return this.#instructions;
  }

  /** The rows, `dimensions` floats each (a view: valid until the next `add`). */
  get rows(): Float32Array {
    return this.#rows.subarray(0, this.#count * this.dimensions);
  }

  /** The unit vector of `instruction`, when the index has it. */
  vectorOf(instruction: string): Float32Array | undefined {
    const row = this.#positions.get(instruction);
    return row === undefined
      ? undefined
      : this.#rows.subarray(row * this.dimensions, (row + 1) * this.dimensions);
  }

  /** Adds `instruction` with `vector` (normalized here) and returns its row. */
  add(instruction: string, vector: ArrayLike<number>): number {
    if (vector.length !== this.dimensions) {
      throw new VectorIndexInvalid(
        `a vector of ${vector.length} dimensions in an index of ${this.dimensions}`,
      );
    }
    if (this.#rows.length < (this.#count + 1) * this.dimensions) {
      const grown = new Float32Array(this.#rows.length * 2);
      grown.set(this.#rows);
      this.#rows = grown;
    }
    this.#rows.set(normalized(vector), this.#count * this.dimensions);
    this.#instructions.push(instruction);
    if (!this.#positions.has(instruction)) this.#positions.set(instruction, this.#count);
    return this.#count++;
  }

  /** Exact nearest row of each query (unit vectors of `dimensions`), by cosine. */
  nearest(queries: readonly Float32Array[]): Nearest[] {
    return searchRows(this.rows, this.#count, this.dimensions, queries);
  }

  /**
   * Layout: `SIVX1`, a uint32 header length, the header (JSON: model, dimensions, synced, instructions),
   * zero padding to a multiple of 4 bytes, then the rows as little-endian float32.
   */
  toBuffer(): Uint8Array {
    const header = Buffer.from(
      JSON.stringify({
        model: this.model,
        dimensions: this.dimensions,
        synced: this.synced,
        instructions: this.#instructions,
      }),
    );
    const start = Math.ceil((MAGIC.length + 4 + header.length) / 4) * 4;
    const out = Buffer.alloc(start + this.#count * this.dimensions * 4);
    out.write(MAGIC, 0, 'latin1');
    out.writeUInt32LE(header.length, MAGIC.length);
    header.copy(out, MAGIC.length + 4);
    const rows = this.rows;
    Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength).copy(out, start);
    return out;
  }

  static fromBuffer(bytes: Uint8Array): VectorIndex {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buffer.length < MAGIC.length + 4 || buffer.toString('latin1', 0, MAGIC.length) !== MAGIC) {
      throw new VectorIndexInvalid('not a vector index');
    }
    const headerLength = buffer.readUInt32LE(MAGIC.length);
    let header: { model: string; dimensions: number; synced: number; instructions: string[] };
    try {
      header = JSON.parse(buffer.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength));
    } catch (error) {
      throw new VectorIndexInvalid('unreadable vector index header', { cause: error });
    }
    const start = Math.ceil((MAGIC.length + 4 + headerLength) / 4) * 4;
    const floats = header.instructions.length * header.dimensions;
    if (buffer.length !== start + floats * 4) {
      throw new VectorIndexInvalid(`vector index of ${buffer.length} bytes, expected ${start + floats * 4}`);
    }
    const index = new VectorIndex(header.model, header.dimensions, header.synced);
    const rows = new Float32Array(
      buffer.buffer.slice(buffer.byteOffset + start, buffer.byteOffset + start + floats * 4),
    );
    index.#rows = rows.length > 0 ? rows : index.#rows;
    index.#count = header.instructions.length;
    header.instructions.forEach((instruction, row) => {
      index.#instructions.push(instruction);
      if (!index.#positions.has(instruction)) index.#positions.set(instruction, row);
    });
    return index;
  }
}

/** The outcome of one candidate at the near-duplicate gate. */
export interface NearDuplicateResult {
  /** Its highest cosine was at most the threshold: it joined the index. */
  accepted: boolean;
  /** Its nearest instruction (pool or earlier in the batch) and cosine; none for an empty pool. */
  nearest?: { instruction: string; score: number };
}

/**
 * The near-duplicate gate over `candidates`, checked in order: each is compared with the index (the pool)
 * and with every candidate accepted before it, and rejected when its highest cosine is strictly above
 * `threshold`; accepted ones join the index. The pool is searched once for all candidates (the kernel's
 * best case); the accepted ones, a few at most, one candidate at a time. A candidate may be left
 * unchecked (another gate rejected it first): it then counts for none after it.
 */
export class NearDuplicateGate {
  readonly #index: VectorIndex;
  readonly #candidates: readonly { instruction: string }[];
  readonly #threshold: number;
  readonly #poolSize: number;
  readonly #queries: Float32Array[];
  readonly #fromPool: Nearest[];

  constructor(
    index: VectorIndex,
    candidates: readonly { instruction: string; vector: ArrayLike<number> }[],
    threshold: number,
  ) {
    this.#index = index;
    this.#candidates = candidates;
    this.#threshold = threshold;
    this.#poolSize = index.size;
    this.#queries = candidates.map(({ vector }) => normalized(vector));
    this.#fromPool = index.nearest(this.#queries);
  }

  /** Decides candidate `i` (call in increasing order; each at most once). */
  check(i: number): NearDuplicateResult {
    const index = this.#index;
    const poolSize = this.#poolSize;
    const query = this.#queries[i] as Float32Array;
    let best = this.#fromPool[i] as Nearest;
    if (index.size > poolSize) {
      const [batch] = searchRows(
        index.rows.subarray(poolSize * index.dimensions),
        index.size - poolSize,
        index.dimensions,
        [query],
      );
      if (batch && batch.score > best.score) best = { row: poolSize + batch.row, score: batch.score };
    }
    const nearest =
      best.score === Number.NEGATIVE_INFINITY
        ? undefined
        : { instruction: index.instructions[best.row] as string, score: best.score };
    const accepted = !(best.score > this.#threshold);
    if (accepted) index.add((this.#candidates[i] as { instruction: string }).instruction, query);
    return { accepted, nearest };
  }
}

/** Gates every candidate in order (`NearDuplicateGate`, all checked). */
export function nearDuplicateGate(
  index: VectorIndex,
  candidates: readonly { instruction: string; vector: ArrayLike<number> }[],
  threshold: number,
): NearDuplicateResult[] {
  const gate = new NearDuplicateGate(index, candidates, threshold);
  return candidates.map((_, i) => gate.check(i));
}

/** The exact nearest of `rows` (count × dimensions) for each query: the kernel, or plain JavaScript. */
export function searchRows(
  rows: Float32Array,
  count: number,
  dimensions: number,
  queries: readonly Float32Array[],
): Nearest[] {
  if (count === 0 || queries.length === 0) {
    return queries.map(() => ({ row: -1, score: Number.NEGATIVE_INFINITY }));
  }
  return wasmSimdAvailable()
    ? nearestWasm(rows, count, dimensions, queries)
    : nearestPlain(rows, count, dimensions, queries);
}

/**
 * The plain loop: for each query, the dot product with every row, four queries at a time (each row is
 * read once for four; the fastest plain JavaScript found, and the benchmark's brute-force baseline).
 */
export function nearestPlain(
  rows: Float32Array,
  count: number,
  dimensions: number,
  queries: readonly Float32Array[],
): Nearest[] {
  const d = dimensions;
  const out: Nearest[] = [];
  const zero = new Float32Array(d);
  for (let q = 0; q < queries.length; q += 4) {
    const q0 = queries[q] as Float32Array;
    const q1 = queries[q + 1] ?? zero;
    const q2 = queries[q + 2] ?? zero;
    const q3 = queries[q + 3] ?? zero;
    const best = [
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ];
    const at = [-1, -1, -1, -1];
    for (let j = 0; j < count; j++) {
      const base = j * d;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < d; k++) {
        const x = rows[base + k] as number;
        s0 += (q0[k] as number) * x;
        s1 += (q1[k] as number) * x;
        s2 += (q2[k] as number) * x;
        s3 += (q3[k] as number) * x;
      }
      const sums = [s0, s1, s2, s3];
      for (let l = 0; l < 4; l++) {
        const s = Math.fround(sums[l] as number);
        if (s > (best[l] as number)) {
          best[l] = s;
          at[l] = j;
        }
      }
    }
    for (let l = 0; l < 4 && q + l < queries.length; l++)
      out.push({ row: at[l] as number, score: best[l] as number });
  }
  return out;
}

interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
type Top = (q: number, rows: number, from: number, to: number, d4: number, best: number, idx: number) => void;
interface VectorKernel {
  memory: WasmMemory;
  top4x2: Top;
  top4: Top;
  top1: Top;
}

const PAGE = 65_536;
/** Rows per block of the pool: 256 rows of 1,024 floats is 1 MB, in a typical L2 cache. */
const BLOCK_BYTES = 256 * 1024;
let kernel: VectorKernel | undefined;

function vectorKernel(): VectorKernel {
  if (!kernel) {
    const api = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const memory = new api.Memory({ initial: 1 }) as WasmMemory;
    const instance = new api.Instance(new api.Module(Buffer.from(VECTOR_KERNEL_WASM, 'base64')), {
      env: { memory },
    });
    kernel = { memory, ...(instance.exports as unknown as Omit<VectorKernel, 'memory'>) };
  }
  return kernel;
}

/** The kernel: rows and queries copied into its memory (padded to a multiple of 4 floats), then scanned. */
function nearestWasm(
  rows: Float32Array,
  count: number,
  dimensions: number,
  queries: readonly Float32Array[],
): Nearest[] {
  const { memory, top4x2, top4, top1 } = vectorKernel();
  const d4 = Math.ceil(dimensions / 4);
  const stride = d4 * 4;
  const m = Math.ceil(queries.length / 4) * 4;
  const rowsAt = 0;
  const queriesAt = rowsAt + count * stride * 4;
  const bestAt = queriesAt + m * stride * 4;
  const idxAt = bestAt + m * 4;
  const bytes = idxAt + m * 4;
  const missing = Math.ceil((bytes - memory.buffer.byteLength) / PAGE);
  if (missing > 0) memory.grow(missing);
  const floats = new Float32Array(memory.buffer);
  const ints = new Int32Array(memory.buffer);
  if (stride === dimensions) floats.set(rows.subarray(0, count * dimensions), rowsAt / 4);
  else {
    floats.fill(0, rowsAt / 4, queriesAt / 4);
    for (let j = 0; j < count; j++) {
      floats.set(rows.subarray(j * dimensions, (j + 1) * dimensions), rowsAt / 4 + j * stride);
    }
  }
  floats.fill(0, queriesAt / 4, bestAt / 4);
  queries.forEach((query, i) => {
    floats.set(query.subarray(0, dimensions), queriesAt / 4 + i * stride);
  });
  floats.fill(Number.NEGATIVE_INFINITY, bestAt / 4, bestAt / 4 + m);
  ints.fill(-1, idxAt / 4, idxAt / 4 + m);
  const block = Math.max(1, Math.floor(BLOCK_BYTES / (stride * 4)));
  for (let from = 0; from < count; from += block) {
    const to = Math.min(count, from + block);
    let q = 0;
    // Rows two at a time, then the odd one out; rows in order either way, so ties go to the first.
    const even = from + ((to - from) & ~1);
    for (; q + 4 <= queries.length; q += 4) {
      top4x2(queriesAt + q * stride * 4, rowsAt, from, even, d4, bestAt + q * 4, idxAt + q * 4);
      if (even < to) top4(queriesAt + q * stride * 4, rowsAt, even, to, d4, bestAt + q * 4, idxAt + q * 4);
    }
    for (; q < queries.length; q++) {
      top1(queriesAt + q * stride * 4, rowsAt, from, to, d4, bestAt + q * 4, idxAt + q * 4);
    }
  }
  return queries.map((_, i) => ({
    row: ints[idxAt / 4 + i] as number,
    score: floats[bestAt / 4 + i] as number,
  }));
}
