/**
 * "Prepare run" for method `backtranslate`: every document of the run's folder (`documents/<pool>/`)
 * split into passages (`functions/shared/documents/`), checked before anything is written (a folder
 * without a passage, a document that can't be read: `RunInputInvalid`, `DocumentInvalid`), then written
 * to the run's folder (`passagesKey`), where "Generate instructions" takes each iteration's share.
 * Deterministic: a retry writes the same file.
 */
import { splitDocuments } from '../shared/documents/passages.ts';
import { RunInputInvalid } from '../shared/errors.ts';
import { toJsonLines } from '../shared/json-lines.ts';
import { DOCUMENTS_PREFIX, documentsPrefix, passagesKey } from '../shared/keys.ts';
import type { ObjectStore } from '../shared/ports.ts';
import type { RunConfig } from '../shared/schemas.ts';

/** The pool of a `documents` input (`documents/<pool>/…`). */
export const poolOfDocuments = (documents: string): string =>
  documents.slice(DOCUMENTS_PREFIX.length).split('/')[0] as string;

/** The run's passages, read and checked now, written by `write()` (see the module comment). */
export async function preparePassages(
  config: RunConfig,
  runId: string,
  objects: ObjectStore,
): Promise<{ write(): Promise<void> }> {
  const folder = documentsPrefix(poolOfDocuments(config.documents as string));
  const { passages, documents, skipped } = await splitDocuments(objects, folder);
  if (passages.length === 0) {
    throw new RunInputInvalid(
      `Run input is invalid: documents: ${folder} holds no passage to backtranslate (${documents.length} document${documents.length === 1 ? '' : 's'} read${skipped.length > 0 ? `; not read: ${skipped.join(', ')} (.txt, .md, .html, .pdf are)` : ''})`,
    );
  }
  return {
    write: () => objects.put(passagesKey(runId), toJsonLines(passages), 'application/jsonl'),
  };
}
