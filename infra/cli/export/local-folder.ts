/**
 * A local folder behind the stage's streamed-write port (`ObjectStreams.upload`): the `export` command
 * writes its files as the "Export dataset" stage uploads its own, chunk by chunk, never whole in memory.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectStreams } from '../../../functions/shared/ports.ts';

/** Files under `root`, keyed by their path relative to it. */
export class LocalFolder implements Pick<ObjectStreams, 'upload'> {
  constructor(readonly root: string) {}

  /**
   * Writes `body`'s chunks, in order, as the file `key` (its folders created). Like an upload, the file
   * appears whole or not at all: the chunks go to a temporary file beside it, renamed when complete.
   */
  async upload(key: string, body: AsyncIterable<string | Uint8Array> | Iterable<string>): Promise<void> {
    const target = path.join(this.root, key);
    const partial = `${target}.partial`;
    await mkdir(path.dirname(target), { recursive: true });
    try {
      await pipeline(Readable.from(body), createWriteStream(partial));
      await rename(partial, target);
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  }
}
