/**
 * A WebAssembly SIMD kernel for bit-parallel LCS (Allison–Dix / Hyyrö) of up to 16 candidates at once
 * against every instruction of a `RougeIndex`.
 *
 * Each candidate of at most 32 tokens is one 32-bit lane (up to 16 per scan), and one of 33–64 tokens one
 * 64-bit lane (up to 8). Per pool token `t` the kernel loads the match masks of all lanes for `t` (one
 * 64-byte row) and updates every lane with `U = V & M; V = (V + U) | (V - U)` (four `i32x4` or `i64x2`
 * vectors). After an instruction, LCS = popcount(~V) over the candidate's bits, stored as one byte per
 * 32 bits. Carries past a lane's top bit only ever move upward, so they never disturb the counted bits.
 *
 * The module (six kernels, under 2 KB) is assembled here from its instructions, so there is no binary blob
 * and no build step. The pool is mirrored into the module's memory incrementally (the index is append-only).
 */
import type { RougeIndex } from './rouge-index.ts';

/** Candidates of at most 32 tokens scanned together by one call. */
export const WASM_LANES = 16;
/** Candidates of 33–64 tokens scanned together by one call. */
export const WIDE_LANES = 8;
/** Longest candidate (in tokens) the kernel takes. */
export const MAX_WASM_TOKENS = 64;

const ROW_BYTES = 64; // 16 lanes × int32 per token id
const OUT_BYTES = 16; // one byte per lane per instruction
const PAGE = 65536;

// --- a tiny assembler -------------------------------------------------------------------------------

const uleb = (value: number): number[] => {
  const out: number[] = [];
  let n = value >>> 0;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};
const sleb = (value: number): number[] => {
  const out: number[] = [];
  let n = value | 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};
const name = (text: string): number[] => {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

const I32 = 0x7f;
const V128 = 0x7b;
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  get: (local: number) => [0x20, ...uleb(local)],
  set: (local: number) => [0x21, ...uleb(local)],
  tee: (local: number) => [0x22, ...uleb(local)],
  i32Load: (offset: number) => [0x28, 2, ...uleb(offset)],
  i32Const: (value: number) => [0x41, ...sleb(value)],
  i32LtU: [0x49],
  i32GeU: [0x4f],
  i32Add: [0x6a],
  i32Shl: [0x74],
  simd: (code: number) => [0xfd, ...uleb(code)],
};
const v128Load = (offset: number) => [...op.simd(0x00), 4, ...uleb(offset)];
const v128Store = (offset: number) => [...op.simd(0x0b), 4, ...uleb(offset)];
const v128Zero = [...op.simd(0x0c), ...new Array<number>(16).fill(0)];
const v128AndNot = op.simd(0x4f);
const v128And = op.simd(0x4e);
const v128Or = op.simd(0x50);
const i8x16Popcnt = op.simd(0x62);
const i8x16NarrowI16x8U = op.simd(0x66);
const i16x8ExtaddPairwiseI8x16U = op.simd(0x7d);
const i32x4ExtaddPairwiseI16x8U = op.simd(0x7f);
const i16x8NarrowI32x4U = op.simd(0x86);
const i32x4Add = op.simd(0xae);
const i32x4Sub = op.simd(0xb1);
const i64x2Add = op.simd(0xce);
const i64x2Sub = op.simd(0xd1);

/**
 * `scan(docFrom, docTo, offsetsPtr, tokensPtr, masksPtr, outPtr, fullPtr)` with `vectors` vectors of
 * i32x4 lanes, or i64x2 when `wide`. Byte addresses; `offsets` holds token indices.
 */
function kernel(vectors: number, wide: boolean): number[] {
  const [docFrom, docTo, offsetsPtr, tokensPtr, masksPtr, outPtr, fullPtr] = [0, 1, 2, 3, 4, 5, 6];
  const [k, end, row, at] = [7, 8, 9, 10];
  const full = (i: number) => 11 + i;
  const v = (i: number) => 11 + vectors + i;
  const u = 11 + 2 * vectors;
  const lanes = Array.from({ length: vectors }, (_, i) => i);
  const count = (i: number) =>
    i < vectors
      ? [
          ...op.get(full(i)),
          ...op.get(v(i)),
          ...v128AndNot, // full & ~V: the candidate positions on the LCS
          ...i8x16Popcnt,
          ...i16x8ExtaddPairwiseI8x16U,
          ...i32x4ExtaddPairwiseI16x8U,
        ]
      : v128Zero;
  const body = [
    ...lanes.flatMap((i) => [...op.get(fullPtr), ...v128Load(16 * i), ...op.set(full(i))]),
    ...op.block,
    ...op.loop,
    ...[...op.get(docFrom), ...op.get(docTo), ...op.i32GeU, ...op.brIf(1)],
    ...lanes.flatMap((i) => [...op.get(full(i)), ...op.set(v(i))]),
    ...[
      ...op.get(offsetsPtr),
      ...op.get(docFrom),
      ...op.i32Const(2),
      ...op.i32Shl,
      ...op.i32Add,
      ...op.tee(at),
    ],
    ...[...op.i32Load(0), ...op.i32Const(2), ...op.i32Shl, ...op.get(tokensPtr), ...op.i32Add, ...op.set(k)],
    ...[...op.get(at), ...op.i32Load(4), ...op.i32Const(2), ...op.i32Shl, ...op.get(tokensPtr), ...op.i32Add],
    ...op.set(end),
    ...[...op.get(k), ...op.get(end), ...op.i32LtU, ...op.if, ...op.loop],
    ...[...op.get(k), ...op.i32Load(0), ...op.i32Const(6), ...op.i32Shl, ...op.get(masksPtr), ...op.i32Add],
    ...op.set(row),
    ...lanes.flatMap((i) => [
      // U = V & M; V = (V + U) | (V - U)
      ...op.get(v(i)),
      ...op.get(v(i)),
      ...op.get(row),
      ...v128Load(16 * i),
      ...v128And,
      ...op.tee(u),
      ...(wide ? i64x2Add : i32x4Add),
      ...op.get(v(i)),
      ...op.get(u),
      ...(wide ? i64x2Sub : i32x4Sub),
      ...v128Or,
      ...op.set(v(i)),
    ]),
    ...[
      ...op.get(k),
      ...op.i32Const(4),
      ...op.i32Add,
      ...op.tee(k),
      ...op.get(end),
      ...op.i32LtU,
      ...op.brIf(0),
    ],
    ...op.end, // loop over tokens
    ...op.end, // if
    ...[...op.get(outPtr), ...op.get(docFrom), ...op.i32Const(4), ...op.i32Shl, ...op.i32Add],
    ...count(0),
    ...count(1),
    ...i16x8NarrowI32x4U,
    ...count(2),
    ...count(3),
    ...i16x8NarrowI32x4U,
    ...i8x16NarrowI16x8U,
    ...v128Store(0),
    ...[...op.get(docFrom), ...op.i32Const(1), ...op.i32Add, ...op.set(docFrom)],
    ...op.br(0),
    ...op.end, // loop over instructions
    ...op.end, // block
    ...op.end, // function
  ];
  const locals = vec([
    [4, I32],
    [2 * vectors + 1, V128],
  ]);
  const code = [...locals, ...body];
  return [...uleb(code.length), ...code];
}

// Name, vectors, 64-bit lanes.
const KERNELS = [
  ['scan4', 1, false],
  ['scan8', 2, false],
  ['scan16', 4, false],
  ['scan2w', 1, true],
  ['scan4w', 2, true],
  ['scan8w', 4, true],
] as const;

function assemble(): Uint8Array {
  const signature = [0x60, ...vec(new Array<number[]>(7).fill([I32])), ...vec([])];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([signature])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec(KERNELS.map(() => [0]))),
    ...section(7, vec(KERNELS.map(([label], i) => [...name(label), 0x00, ...uleb(i)]))),
    ...section(10, vec(KERNELS.map(([, vectors, wide]) => kernel(vectors, wide)))),
  ]);
}

// The WebAssembly API, typed here because the project's `lib` setting (ES2023, no DOM) leaves it out.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmModule {
  readonly kind?: never;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

type Scan = (
  docFrom: number,
  docTo: number,
  offsetsPtr: number,
  tokensPtr: number,
  masksPtr: number,
  outPtr: number,
  fullPtr: number,
) => void;

let compiled: WasmModule | null | undefined;

/** The compiled module, or null when this runtime has no WebAssembly SIMD. */
function module(): WasmModule | null {
  if (compiled === undefined) {
    const bytes = assemble();
    compiled = wasmApi?.validate(bytes) ? new wasmApi.Module(bytes) : null;
  }
  return compiled;
}

/** Whether the SIMD kernel can run here (Node 16.4+ and every current browser). */
export function wasmSimdAvailable(): boolean {
  return module() !== null;
}

interface Layout {
  vocabulary: number;
  documents: number;
  tokens: number;
  masks: number;
  full: number;
  offsets: number;
  tokenIds: number;
  /** Output of 32-bit-lane scans, then of 64-bit-lane scans. */
  out: [number, number];
  bytes: number;
}

function layoutFor(vocabulary: number, documents: number, tokens: number): Layout {
  const masks = 0;
  const full = masks + vocabulary * ROW_BYTES;
  const offsets = full + ROW_BYTES;
  const tokenIds = offsets + 16 * Math.ceil(((documents + 1) * 4) / 16);
  const out = tokenIds + 16 * Math.ceil((tokens * 4) / 16);
  const outWide = out + documents * OUT_BYTES;
  const bytes = outWide + documents * OUT_BYTES;
  return { vocabulary, documents, tokens, masks, full, offsets, tokenIds, out: [out, outWide], bytes };
}

/**
 * The kernel bound to one index: mirrors the index into WebAssembly memory and scans it for a batch
 * of candidates. Use `WasmLcsScanner.for(index)`; null when SIMD is unavailable.
 */
export class WasmLcsScanner {
  static readonly #scanners = new WeakMap<RougeIndex, WasmLcsScanner>();

  readonly #index: RougeIndex;
  readonly #memory: WasmMemory;
  readonly #kernels: Scan[];
  #layout: Layout = layoutFor(0, 0, 0);
  #synced = 0;

  private constructor(index: RougeIndex, wasm: WasmModule, api: WasmApi) {
    this.#index = index;
    this.#memory = new api.Memory({ initial: 1 });
    const instance = new api.Instance(wasm, { env: { memory: this.#memory } });
    this.#kernels = KERNELS.map(([label]) => instance.exports[label] as Scan);
  }

  /** The scanner of `index` (one per index, created on first use), or null without WebAssembly SIMD. */
  static for(index: RougeIndex): WasmLcsScanner | null {
    let scanner = WasmLcsScanner.#scanners.get(index);
    if (scanner === undefined) {
      const wasm = module();
      if (wasm === null || wasmApi === undefined) return null;
      scanner = new WasmLcsScanner(index, wasm, wasmApi);
      WasmLcsScanner.#scanners.set(index, scanner);
    }
    return scanner;
  }

  /**
   * LCS lengths of candidates (token ids of the index's vocabulary; ids outside it, such as negative ones,
   * match nothing) against instructions `0 .. documents)`: up to 16 candidates of 1–32 tokens, or up to 8
   * of 1–64 tokens when any has more than 32 (`wide`). Returns a view of 16 bytes per instruction:
   * the LCS of candidate `c` and instruction `d` is byte `16 * d + c`, or, wide, the sum of bytes
   * `16 * d + 2 * c` and `16 * d + 2 * c + 1`. A wide and a narrow scan can be used together; both views
   * stay valid until the index grows.
   */
  scan(candidates: readonly Int32Array[], documents: number): { counts: Uint8Array; wide: boolean } {
    const wide = candidates.some((ids) => ids.length > 32);
    const lanes = wide ? WIDE_LANES : WASM_LANES;
    if (candidates.length > lanes) throw new RangeError(`at most ${lanes} candidates per scan`);
    if (documents > this.#index.size) throw new RangeError('more documents than the index holds');
    this.#sync();
    const layout = this.#layout;
    const buffer = this.#memory.buffer;
    const masks = new Int32Array(buffer, layout.masks, layout.vocabulary * 16);
    const full = new Int32Array(buffer, layout.full, 16);
    const vocabulary = this.#index.vocabularySize;
    const slots = wide ? 2 : 1;
    const each = (update: (at: number, bit: number) => void) => {
      candidates.forEach((ids, lane) => {
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i] as number;
          if (id >= 0 && id < vocabulary) update(id * 16 + lane * slots + (i >>> 5), 1 << (i & 31));
        }
      });
    };
    candidates.forEach((ids, lane) => {
      if (ids.length === 0 || ids.length > MAX_WASM_TOKENS)
        throw new RangeError('a lane holds 1 to 64 tokens');
      for (let half = 0; half < slots; half++) {
        const bits = Math.min(32, Math.max(0, ids.length - 32 * half));
        full[lane * slots + half] = bits === 32 ? -1 : (1 << bits) - 1;
      }
    });
    each((at, bit) => {
      masks[at] = (masks[at] as number) | bit;
    });
    const vectors = Math.ceil((candidates.length * slots) / 4);
    const scan = this.#kernels[(wide ? 3 : 0) + (vectors === 1 ? 0 : vectors === 2 ? 1 : 2)] as Scan;
    const out = layout.out[wide ? 1 : 0] as number;
    scan(0, documents, layout.offsets, layout.tokenIds, layout.masks, out, layout.full);
    each((at) => {
      masks[at] = 0;
    });
    full.fill(0);
    return { counts: new Uint8Array(buffer, out, documents * OUT_BYTES), wide };
  }

  /** Copies instructions added to the index since the last scan, re-laying out memory when it is full. */
  #sync(): void {
    const index = this.#index;
    const { tokens, offsets } = index.storage();
    let layout = this.#layout;
    if (
      index.vocabularySize > layout.vocabulary ||
      index.size > layout.documents ||
      index.tokenCount > layout.tokens
    ) {
      layout = layoutFor(
        Math.max(index.vocabularySize, 2 * layout.vocabulary, 1024),
        Math.max(index.size, 2 * layout.documents, 256),
        Math.max(index.tokenCount, 2 * layout.tokens, 4096),
      );
      const missing = Math.ceil((layout.bytes - this.#memory.buffer.byteLength) / PAGE);
      if (missing > 0) this.#memory.grow(missing);
      new Uint8Array(this.#memory.buffer, 0, layout.full + ROW_BYTES).fill(0);
      this.#layout = layout;
      this.#synced = 0;
    }
    if (this.#synced === index.size) return;
    const buffer = this.#memory.buffer;
    const from = this.#synced;
    new Int32Array(buffer, layout.offsets, layout.documents + 1).set(offsets.subarray(from), from);
    const firstToken = offsets[from] as number;
    new Int32Array(buffer, layout.tokenIds, layout.tokens).set(tokens.subarray(firstToken), firstToken);
    this.#synced = index.size;
  }
}
