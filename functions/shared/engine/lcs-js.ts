/**
 * Bit-parallel LCS (Allison–Dix 1986, in Hyyrö's 2004 form) of one candidate against every instruction
 * of a `RougeIndex`, in plain JavaScript: the fallback of the WebAssembly kernel and the path for
 * candidates longer than 32 tokens.
 *
 * The candidate's positions are bits: `M[t]` has bit i set when the candidate's i-th token is `t`. Scanning
 * an instruction, each token updates `U = V & M[t]; V = (V + U) | (V - U)` (multiword: `V - U` = `V & ~M`,
 * and the addition carries across words); a token not in the candidate has `M = 0`, a no-op. The LCS is the
 * number of zero bits of V within the candidate's length. O(n·⌈m/32⌉) per instruction instead of O(n·m).
 */
import type { RougeIndex } from './rouge-index.ts';

let masks = new Int32Array(0);

/** Bits set in a 32-bit integer. */
export function popcount32(value: number): number {
  let x = value - ((value >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/**
 * Writes into `out[d]` the LCS length of `candidate` (token ids of the index's vocabulary; other ids,
 * such as negative ones, match nothing) and instruction `d`, for `d` in `0 .. documents)`.
 */
export function lcsAgainstIndex(
  index: RougeIndex,
  candidate: Int32Array,
  documents: number,
  out: Int32Array,
): void {
  const m = candidate.length;
  if (m === 0) {
    out.fill(0, 0, documents);
    return;
  }
  const words = Math.ceil(m / 32);
  const vocabulary = index.vocabularySize;
  if (masks.length < vocabulary * words)
    masks = new Int32Array(Math.max(vocabulary * words, 2 * masks.length));
  for (let i = 0; i < m; i++) {
    const id = candidate[i] as number;
    if (id >= 0 && id < vocabulary) {
      const at = id * words + (i >>> 5);
      masks[at] = (masks[at] as number) | (1 << (i & 31));
    }
  }
  const { tokens, offsets } = index.storage();
  try {
    if (words === 1) scanOneWord(tokens, offsets, m, documents, out);
    else scanWords(tokens, offsets, m, words, documents, out);
  } finally {
    for (let i = 0; i < m; i++) {
      const id = candidate[i] as number;
      if (id >= 0 && id < vocabulary) masks[id * words + (i >>> 5)] = 0;
    }
  }
}

function scanOneWord(
  tokens: Int32Array,
  offsets: Int32Array,
  m: number,
  documents: number,
  out: Int32Array,
): void {
  const table = masks;
  const full = m === 32 ? -1 : (1 << m) - 1;
  for (let d = 0; d < documents; d++) {
    let v = full;
    const end = offsets[d + 1] as number;
    for (let k = offsets[d] as number; k < end; k++) {
      const u = v & (table[tokens[k] as number] as number);
      v = (v + u) | (v - u);
    }
    out[d] = popcount32(~v & full);
  }
}

function scanWords(
  tokens: Int32Array,
  offsets: Int32Array,
  m: number,
  words: number,
  documents: number,
  out: Int32Array,
): void {
  const table = masks;
  const v = new Int32Array(words);
  const top = m % 32 === 0 ? -1 : (1 << (m % 32)) - 1;
  for (let d = 0; d < documents; d++) {
    v.fill(-1);
    v[words - 1] = top;
    const end = offsets[d + 1] as number;
    for (let k = offsets[d] as number; k < end; k++) {
      const row = (tokens[k] as number) * words;
      let carry = 0;
      for (let w = 0; w < words; w++) {
        const mask = table[row + w] as number;
        const vw = v[w] as number;
        const sum = (vw >>> 0) + ((vw & mask) >>> 0) + carry;
        carry = sum > 0xffffffff ? 1 : 0;
        v[w] = sum | (vw & ~mask);
      }
    }
    let lcs = 0;
    for (let w = 0; w < words - 1; w++) lcs += popcount32(~(v[w] as number));
    out[d] = lcs + popcount32(~(v[words - 1] as number) & top);
  }
}
