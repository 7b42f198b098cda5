/**
 * The gate's WebAssembly SIMD kernel (`kernel.wat`, assembled by `npm run build:kernel` into
 * `kernel.wasm.ts`), bound to a `TokenPool` whose instructions it mirrors into its memory (incrementally:
 * the pool is append-only).
 *
 * A scan compares up to 32 candidates of at most 16 tokens (one per 16-bit lane), 16 of at most 32 or 8
 * of at most 64 with a range of the pool, bit-parallel, keeping per candidate and instruction the index
 * of its score in a table by instruction length and LCS; per instruction length it also keeps the longest
 * LCS, from which the highest score of each candidate follows without scoring every pair. Then, per
 * candidate, the kernel looks every score up, keeps the top k and sums subtrees of NumPy's pairwise
 * summation over the scores: no per-pair work is left to JavaScript.
 *
 * The module is compiled once per process. Without WebAssembly SIMD (a runtime that does not validate
 * a one-instruction SIMD probe) the engine uses its JavaScript kernel; a runtime with SIMD on which the
 * kernel does not compile is a broken build, and throws `WasmKernelInvalid`.
 */
import { SelfInstructError } from '../errors.ts';
import { KERNEL_WASM, SIMD_PROBE_WASM } from './kernel.wasm.ts';
import { fMeasure } from './rouge.ts';
import type { TokenPool } from './token-pool.ts';

/** The kernel does not compile on a runtime that has WebAssembly SIMD: `kernel.wasm.ts` is broken. */
export class WasmKernelInvalid extends SelfInstructError {}

/**
 * Bits per lane of a scan: a candidate of at most 16 tokens fits a 16-bit lane (32 per scan), one of at
 * most 32 a 32-bit lane (16 per scan), one of at most 64 a 64-bit lane (8 per scan).
 */
export type LaneBits = 16 | 32 | 64;
/** Candidates a scan holds, by lane width. */
export const LANES: Readonly<Record<LaneBits, number>> = { 16: 32, 32: 16, 64: 8 };
/** Longest candidate (in tokens) the kernel takes. */
export const MAX_WASM_TOKENS = 64;
/** Lanes of score indices per slot: a scan of 16-bit lanes fills two slots, the others one. */
export const SLOT_LANES = 16;

const ROW_BYTES = 64; // one row of masks: 512 bits, one per candidate token of a scan
const HIST_BYTES = 32; // one LCS byte per lane per instruction length
/** Rows of masks: one of zeros, and one per distinct token of the candidates of a scan (16 × 32). */
const MASK_ROWS = 1 + 512;
const INDEX_BYTES = 2; // one score index per lane per instruction
const PAGE = 65536;
/**
 * Most distinct instruction lengths in a pool the kernel takes: a score index, row (m + 1) + lcs, must fit
 * in 16 bits. (A pool beyond it, of instructions of over a thousand different lengths, gets the
 * JavaScript kernel.)
 */
export const MAX_DISTINCT_LENGTHS = Math.floor(0x10000 / (MAX_WASM_TOKENS + 1));
/** Table rows before candidate length m's table, per length: Σ (j + 1) for 1 ≤ j < m. */
const tableStart = (m: number) => (m * (m + 1)) / 2 - 1;

// The WebAssembly API, typed here because the project's `lib` setting (ES2023, no DOM) leaves it out.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
/** A compiled WebAssembly module. */
export interface WasmModule {
  readonly kind?: never;
}
/** The part of the `WebAssembly` namespace the kernel uses. */
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

type Scan = (
  docFrom: number,
  docTo: number,
  offsets: number,
  tokens: number,
  lengthIds: number,
  rowOf: number,
  masks: number,
  full: number,
  hist: number,
  out: number,
  laneBytes: number,
  scratch: number,
) => void;
interface Kernel {
  scan32h: Scan;
  scan16: Scan;
  scan8w: Scan;
  score: (
    indices: number,
    docFrom: number,
    docTo: number,
    table: number,
    scores: number,
    top: number,
    k: number,
  ) => number;
  more: (scores: number, count: number, first: number, top: number, k: number) => number;
  pairwise: (values: number, n: number) => number;
}

/**
 * Compiles `kernel`. Returns null when the runtime has no WebAssembly SIMD (`probe`, a module using a
 * SIMD instruction, does not validate); throws `WasmKernelInvalid` when it has SIMD but `kernel` does not
 * compile, so that a broken build fails loudly instead of falling back to the slower kernel.
 */
export function compileKernel(
  api: WasmApi | undefined,
  kernel: Uint8Array,
  probe: Uint8Array,
): WasmModule | null {
  if (api === undefined || !api.validate(probe)) return null;
  try {
    return new api.Module(kernel);
  } catch (error) {
    throw new WasmKernelInvalid(
      `The WebAssembly kernel does not compile on a runtime with SIMD (${(error as Error).message}); ` +
        'rebuild it with `npm run build:kernel`',
      { cause: error },
    );
  }
}

let compiled: WasmModule | null | undefined;

function kernelModule(): WasmModule | null {
  compiled ??= compileKernel(
    wasmApi,
    Buffer.from(KERNEL_WASM, 'base64'),
    Buffer.from(SIMD_PROBE_WASM, 'base64'),
  );
  return compiled;
}

/** Whether the SIMD kernel runs here (Node 16.4+ and every current browser). */
export function wasmSimdAvailable(): boolean {
  return kernelModule() !== null;
}

/** What the kernel's memory is sized for. */
interface Capacity {
  idLimit: number;
  documents: number;
  /** Instructions scanned by one batch (`to - from`). */
  range: number;
  tokens: number;
  /** Distinct instruction lengths. */
  lengths: number;
  slots: number;
  k: number;
}

/** Byte addresses of the regions of the kernel's memory, and the capacities they were sized for. */
interface Layout extends Capacity {
  /** The score indices of 8 instructions, on their way to their lanes (8 × 64 bytes). */
  scratch: number;
  /** Per token id, its row in `masks` (int16; 0, a row of zeros, for a token no candidate has). */
  rowOf: number;
  masks: number;
  full: number;
  hist: number;
  tables: number;
  top: number;
  offsets: number;
  tokenIds: number;
  lengthIds: number;
  scores: number;
  /** Lane `c` of slot `s` keeps instruction `from + i`'s score index (int16) at `out + ((16 s + c) range + i) * 2`. */
  out: number;
  bytes: number;
}

const align = (bytes: number) => 16 * Math.ceil(bytes / 16);

/** Typed views of the whole of a memory's buffer (addresses are byte offsets; index = address / size). */
function views(buffer: ArrayBuffer) {
  return {
    u8: new Uint8Array(buffer),
    u16: new Uint16Array(buffer),
    i32: new Int32Array(buffer),
    f64: new Float64Array(buffer),
  };
}

function layoutFor(capacity: Capacity): Layout {
  const scratch = 0;
  const masks = scratch + 8 * 64;
  const rowOf = masks + MASK_ROWS * ROW_BYTES;
  const full = rowOf + align(capacity.idLimit * 2);
  const hist = full + ROW_BYTES + 64; // the full row, then each lane's m + 1 as int16
  const tables = hist + align(capacity.lengths * HIST_BYTES);
  const top = tables + align(capacity.lengths * tableStart(MAX_WASM_TOKENS + 1) * 8);
  const offsets = top + align(capacity.k * 12 + 4);
  const tokenIds = offsets + align((capacity.documents + 1) * 4);
  const lengthIds = tokenIds + align(capacity.tokens * 4);
  const scores = lengthIds + align(capacity.documents * 4);
  const out = scores + align(capacity.range * 8);
  const bytes = out + capacity.slots * SLOT_LANES * capacity.range * INDEX_BYTES;
  return {
    ...capacity,
    scratch,
    rowOf,
    masks,
    full,
    hist,
    tables,
    top,
    offsets,
    tokenIds,
    lengthIds,
    scores,
    out,
    bytes,
  };
}

/**
 * The kernel bound to one `TokenPool`. Per batch: `begin` (mirror the pool, size the memory), `scan`
 * each group of candidates into its own slot, then per candidate `score` and `pairwise`.
 */
export class WasmScanner {
  readonly #pool: TokenPool;
  readonly #memory: WasmMemory;
  readonly #kernel: Kernel;
  #layout: Layout = layoutFor({ idLimit: 0, documents: 0, range: 0, tokens: 0, lengths: 0, slots: 0, k: 0 });
  #synced = 0;
  /** The pool's `rollbacks` when it was copied. */
  #rollbacks = 0;
  /** Distinct instruction lengths of the pool when the batch began: the rows its scans refer to. */
  #lengths = 0;
  /** Per candidate length, how many rows (instruction lengths) of its score table are filled. */
  #tableRows = new Int32Array(MAX_WASM_TOKENS + 1);
  /** Views of the memory, replaced when it grows. */
  #views = views(new ArrayBuffer(0));

  private constructor(pool: TokenPool, wasm: WasmModule, api: WasmApi) {
    this.#pool = pool;
    this.#memory = new api.Memory({ initial: 1 });
    this.#kernel = new api.Instance(wasm, { env: { memory: this.#memory } }).exports as unknown as Kernel;
  }

  /**
   * A scanner of `pool`, or null without WebAssembly SIMD. Check `MAX_DISTINCT_LENGTHS` before each
   * batch. Each scanner keeps its own copy of the pool and its own batch.
   */
  static create(pool: TokenPool): WasmScanner | null {
    const wasm = kernelModule();
    return wasm === null || wasmApi === undefined ? null : new WasmScanner(pool, wasm, wasmApi);
  }

  /**
   * Starts a batch of `slots` scans of `range` instructions each whose candidates keep their `k` best:
   * copies the instructions added to the pool since the last batch, re-laying out the memory when it is
   * too small (which forgets earlier slots). Slots, scores and top k stay valid until the next `begin`.
   */
  begin(slots: number, k: number, range: number): void {
    const pool = this.#pool;
    let layout = this.#layout;
    if (
      pool.idLimit > layout.idLimit ||
      pool.size > layout.documents ||
      range > layout.range ||
      pool.tokenCount > layout.tokens ||
      pool.lengthsById.length > layout.lengths ||
      slots > layout.slots ||
      k > layout.k
    ) {
      // Each capacity grows when it falls short, by half again or more, so that re-layouts stay rare.
      const grow = (need: number, has: number, least: number) =>
        need > has ? Math.max(need, Math.ceil(1.5 * has), least) : has;
      layout = layoutFor({
        idLimit: grow(pool.idLimit, layout.idLimit, 1024),
        documents: grow(pool.size, layout.documents, 256),
        range: grow(range, layout.range, 256),
        tokens: grow(pool.tokenCount, layout.tokens, 4096),
        lengths: Math.min(grow(pool.lengthsById.length, layout.lengths, 64), MAX_DISTINCT_LENGTHS),
        slots: grow(slots, layout.slots, 1),
        k: grow(k, layout.k, 1),
      });
      const missing = Math.ceil((layout.bytes - this.#memory.buffer.byteLength) / PAGE);
      if (missing > 0) this.#memory.grow(missing);
      this.#views = views(this.#memory.buffer);
      this.#views.u8.fill(0, 0, layout.tables); // masks, full and histogram
      this.#layout = layout;
      this.#synced = 0;
      this.#tableRows.fill(0);
    }
    if (pool.rollbacks !== this.#rollbacks) {
      // Rolled back since the copy (a cached pool lent to a gate, `RougeIndex.rollback`): its tail and
      // the length ids of the score tables may have changed, so both are made again.
      this.#rollbacks = pool.rollbacks;
      this.#synced = 0;
      this.#tableRows.fill(0);
    }
    this.#lengths = pool.lengthsById.length;
    if (this.#synced === pool.size) return;
    const { i32 } = this.#views;
    const from = this.#synced;
    const { tokens, offsets, lengthIds } = pool.storage();
    i32.set(offsets.subarray(from), layout.offsets / 4 + from);
    i32.set(lengthIds.subarray(from), layout.lengthIds / 4 + from);
    const firstToken = offsets[from] as number;
    i32.set(tokens.subarray(firstToken), layout.tokenIds / 4 + firstToken);
    this.#synced = pool.size;
  }

  /**
   * Scans `candidates` (token ids; ids outside the pool's match nothing) against instructions
   * `[from, to)` into `slot` (and the next one, for 16-bit lanes): up to `LANES[bits]` candidates of at
   * most `bits` tokens each. Returns each candidate's highest ROUGE-L F-measure over the range (0 for an
   * empty range).
   */
  scan(
    slot: number,
    candidates: readonly Int32Array[],
    from: number,
    to: number,
    bits: LaneBits,
  ): Float64Array {
    const layout = this.#layout;
    if (candidates.length > LANES[bits]) throw new RangeError(`at most ${LANES[bits]} candidates per scan`);
    if (slot + (bits === 16 ? 2 : 1) > layout.slots || to > this.#synced || to - from > layout.range)
      throw new RangeError('scan outside the batch begun');
    const { u8, u16, f64 } = this.#views;
    const masks = u16.subarray(layout.masks / 2, layout.masks / 2 + MASK_ROWS * 32);
    const rowOf = u16.subarray(layout.rowOf / 2, layout.rowOf / 2 + layout.idLimit);
    const full = u16.subarray(layout.full / 2, layout.full / 2 + 64);
    const idLimit = this.#pool.idLimit;
    const units = bits / 16; // 16-bit words per lane
    // A row of masks per distinct token of the candidates, so that the rows scanned stay in cache.
    let rows = 1;
    candidates.forEach((ids, lane) => {
      if (ids.length === 0 || ids.length > bits) throw new RangeError(`a lane holds 1 to ${bits} tokens`);
      for (let unit = 0; unit < units; unit++) {
        const set = Math.min(16, Math.max(0, ids.length - 16 * unit));
        full[lane * units + unit] = (1 << set) - 1;
      }
      full[32 + lane] = ids.length + 1; // the lane's row stride in its table of scores
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] as number;
        if (id < 0 || id >= idLimit) continue;
        let row = rowOf[id] as number;
        if (row === 0) {
          row = rows++;
          rowOf[id] = row;
        }
        const at = row * 32 + lane * units + (i >>> 4);
        masks[at] = (masks[at] as number) | (1 << (i & 15));
      }
    });
    ({ 16: this.#kernel.scan32h, 32: this.#kernel.scan16, 64: this.#kernel.scan8w })[bits](
      from,
      to,
      layout.offsets,
      layout.tokenIds,
      layout.lengthIds,
      layout.rowOf,
      layout.masks,
      layout.full,
      layout.hist,
      this.#indices(slot, 0, from),
      layout.range * INDEX_BYTES,
      layout.scratch,
    );
    for (const ids of candidates) {
      for (const id of ids) if (id >= 0 && id < idLimit) rowOf[id] = 0;
    }
    masks.fill(0, 0, rows * 32);
    full.fill(0);

    // Per instruction length, the longest LCS of each candidate: F grows with the LCS at a fixed length,
    // so the highest score is the highest of F(longest LCS, m, n) over the lengths n.
    const highest = new Float64Array(candidates.length);
    for (let lane = 0; lane < candidates.length; lane++) {
      const stride = (candidates[lane] as Int32Array).length + 1;
      const table = this.#table(stride - 1) / 8;
      let best = 0;
      for (let row = 0, at = layout.hist + lane; row < this.#lengths; row++, at += HIST_BYTES) {
        const score = f64[table + row * stride + (u8[at] as number)] as number;
        if (score > best) best = score;
      }
      highest[lane] = best;
    }
    u8.fill(0, layout.hist, layout.hist + this.#lengths * HIST_BYTES);
    return highest;
  }

  /** Where lane `lane` of `slot` keeps its score indices. */
  #indices(slot: number, lane: number, from: number): number {
    const layout = this.#layout;
    // Less `from`, so that instruction d's index is at + 2 d; an address below 0 wraps (i32 arithmetic).
    return layout.out + ((slot * SLOT_LANES + lane) * layout.range - from) * INDEX_BYTES;
  }

  /**
   * Scores candidate `lane` of `slot` (of `m` tokens) against instructions `[from, to)` of its scan,
   * followed by `tail`, its scores against instructions after them: the scores go to `scores()` (index
   * `d - from`), the `k` best to `top()`; returns how many those are.
   */
  score(
    slot: number,
    lane: number,
    m: number,
    from: number,
    to: number,
    k: number,
    tail: Float64Array = new Float64Array(0),
  ): number {
    const layout = this.#layout;
    if (k > layout.k || to - from + tail.length > layout.range)
      throw new RangeError('scores beyond the batch begun');
    const kernel = this.#kernel;
    const filled = kernel.score(
      this.#indices(slot, lane, from),
      from,
      to,
      this.#table(m),
      layout.scores,
      layout.top,
      k,
    );
    if (tail.length === 0) return filled;
    const at = layout.scores + 8 * (to - from);
    this.#views.f64.set(tail, at / 8);
    return kernel.more(at, tail.length, to, layout.top, k);
  }

  /**
   * The address of the scores of a candidate of `m` tokens, `F(lcs, m, n)` at row `r` (n: the pool's
   * length of id r) and column lcs, filling the rows of lengths first seen since the last call.
   */
  #table(m: number): number {
    const layout = this.#layout;
    const table = layout.tables + tableStart(m) * layout.lengths * 8;
    const filled = this.#tableRows[m] as number;
    if (filled < this.#lengths) {
      const lengths = this.#pool.lengthsById;
      const { f64 } = this.#views;
      for (let row = filled, at = table / 8 + filled * (m + 1); row < this.#lengths; row++) {
        for (let lcs = 0; lcs <= m; lcs++) f64[at++] = fMeasure(lcs, m, lengths[row] as number);
      }
      this.#tableRows[m] = this.#lengths;
    }
    return table;
  }

  /** The scores of the last `score` call, `count` of them. */
  scores(count: number): Float64Array {
    const start = this.#layout.scores / 8;
    return this.#views.f64.subarray(start, start + count);
  }

  /** The top `k` of the last `score` call: scores descending, and their pool positions. */
  top(k: number): { scores: Float64Array; positions: Int32Array } {
    const { top } = this.#layout;
    return {
      scores: this.#views.f64.subarray(top / 8, top / 8 + k),
      positions: this.#views.i32.subarray(top / 4 + 2 * k, top / 4 + 3 * k),
    };
  }

  /** NumPy's pairwise sum of `scores()[start .. start + n)`. */
  pairwise(start: number, n: number): number {
    return this.#kernel.pairwise(this.#layout.scores + 8 * start, n);
  }
}
