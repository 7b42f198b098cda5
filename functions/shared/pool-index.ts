/**
 * A pool's persisted ROUGE-L index (S3), so no Lambda re-tokenizes the pool, stored as append-only
 * segments: each commit writes only the segment of the instructions it added
 * (`pools/<pool>/segments/<run>/iteration-<n>.bin`) and a manifest listing every segment in pool order
 * (`IndexManifest`, the pool's `META` `indexKey`). A function keeps the segments it loaded in memory (the
 * merged index, per object store) and their bytes in `/tmp` (by content digest), so a warm function
 * loads only the segments committed since its last call: an iteration's load costs its new segment,
 * not the pool. An index written as one object before segments reads as one (legacy) segment.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RougeIndex } from './engine/gate.ts';
import type { RougeIndexCheckpoint } from './engine/rouge-index.ts';
import { SelfInstructError } from './errors.ts';
import { poolKeys } from './keys.ts';
import type { ObjectStore, PoolMeta, PoolStore } from './ports.ts';
import { IndexManifest, type IndexSegment } from './records.ts';

/** A committed segment of a pool's index is missing or not what its manifest says. */
export class IndexSegmentInvalid extends SelfInstructError {}

/** A pool as committed: its `META` item and the S3 keys of its committed seed list and index. */
export interface CommittedPool {
  meta: PoolMeta | undefined;
  seedsKey: string;
  indexKey: string;
}

/** The pool as its last commit left it (a pool committed before versioned keys: the fixed ones). */
export async function committedPool(store: PoolStore, pool: string): Promise<CommittedPool> {
  const meta = await store.getMeta(pool);
  const keys = poolKeys(pool);
  return { meta, seedsKey: meta?.seedsKey ?? keys.seeds, indexKey: meta?.indexKey ?? keys.index };
}

/** An index with no segment (a pool before its first commit). */
export const EMPTY_MANIFEST: IndexManifest = { version: 1, segments: [] };

/**
 * The manifest of the pool as committed: `EMPTY_MANIFEST` for a pool nothing has committed to yet (no
 * `META`, or one holding only a lease), else `readManifest` (a pool committed before versioned keys has
 * tasks and its index under the fixed key).
 */
export function committedManifest(objects: ObjectStore, committed: CommittedPool): Promise<IndexManifest> {
  const { meta } = committed;
  return meta?.indexKey === undefined && !meta?.taskCount
    ? Promise.resolve(EMPTY_MANIFEST)
    : readManifest(objects, committed.indexKey);
}

/**
 * The manifest `indexKey` names: parsed from a `.json` manifest, or one legacy segment for an index
 * stored whole (a pool committed before segments; a missing one reads as an empty index).
 */
export async function readManifest(objects: ObjectStore, indexKey: string): Promise<IndexManifest> {
  if (!indexKey.endsWith('.json')) return { version: 1, segments: [{ key: indexKey, legacy: true }] };
  const text = await objects.getText(indexKey);
  if (text === undefined) throw new IndexSegmentInvalid(`The pool's index manifest ${indexKey} is missing`);
  return IndexManifest.parse(JSON.parse(text));
}

/**
 * `manifest` with one more segment, of `texts` (none when `texts` is empty), written at `writeTo` and
 * listed under `key` (where the commit puts it: a stage that may not write the pool's keys stages it
 * under its run's, and "Save iteration" copies it). A retry writes the same bytes under the same keys.
 */
export async function appendSegment(
  objects: ObjectStore,
  manifest: IndexManifest,
  { writeTo, key, seeds }: { writeTo: string; key: string; seeds?: boolean },
  texts: readonly string[],
): Promise<IndexManifest> {
  if (texts.length === 0) return manifest;
  const bytes = RougeIndex.from(texts).toBuffer();
  await objects.put(writeTo, bytes);
  const segment: IndexSegment = {
    key,
    size: texts.length,
    sha256: sha256(bytes),
    ...(seeds ? { seeds } : {}),
  };
  return { ...manifest, segments: [...manifest.segments, segment] };
}

/** The pool's index, lent by `openPoolIndex`: gate on it, then `release` it (in a `finally`). */
export interface PoolIndexLease {
  /** The merged index of every segment; instructions added to it are dropped again by `release`. */
  readonly index: RougeIndex;
  /** Instructions of the committed index (the index's size when lent). */
  readonly size: number;
  /** Gives the index back as it was lent. */
  release(): void;
}

/** Where loaded segments are kept between calls. */
export interface SegmentCacheOptions {
  /**
   * Folder for segment bytes by digest (the function's `/tmp`); `false`: none.
   * @default env `SELFINSTRUCT_INDEX_CACHE` ("off": none), else `<tmpdir>/selfinstruct-index`
   */
  cacheDir?: string | false;
}

/** What one object store's merged index holds: the identities of its segments, in order. */
interface CachedIndex {
  ids: string[];
  index: RougeIndex;
  /** Settles when the current lease is released: one lease at a time per store. */
  busy: Promise<void>;
}

const cached = new WeakMap<ObjectStore, CachedIndex>();

/** How the last `openPoolIndex` got its segments (for tests and the scale bench). */
export const segmentLoads = { fromStore: 0, fromDisk: 0, reused: 0 };

/**
 * Lends the merged index of `manifest`'s segments. Segments already merged by an earlier call on the
 * same object store are reused (segments never change once committed, so identity is their digest, or
 * the key for a legacy index); the others are read from the `/tmp` cache or the store and appended.
 * The lease must be released before the next one on the same store is granted.
 */
export async function openPoolIndex(
  objects: ObjectStore,
  manifest: IndexManifest,
  options: SegmentCacheOptions = {},
): Promise<PoolIndexLease> {
  let state = cached.get(objects);
  if (state === undefined) {
    state = { ids: [], index: new RougeIndex(), busy: Promise.resolve() };
    cached.set(objects, state);
  }
  const previous = state.busy;
  let release = () => {};
  state.busy = new Promise<void>((resolve) => {
    release = resolve;
  });
  await previous;
  try {
    await mergeSegments(state, objects, manifest, cacheDirOf(options));
  } catch (error) {
    release();
    throw error;
  }
  const checkpoint: RougeIndexCheckpoint = state.index.checkpoint();
  const index = state.index;
  let released = false;
  return {
    index,
    size: index.size,
    release: () => {
      if (released) return;
      released = true;
      index.rollback(checkpoint);
      release();
    },
  };
}

/** Appends to `state` what `manifest` has beyond it (or rebuilds it when it is not a prefix). */
async function mergeSegments(
  state: CachedIndex,
  objects: ObjectStore,
  manifest: IndexManifest,
  cacheDir: string | undefined,
): Promise<void> {
  const ids = manifest.segments.map(segmentId);
  const reusable = state.ids.length <= ids.length && state.ids.every((id, i) => id === ids[i]);
  if (!reusable) {
    state.ids = [];
    state.index = new RougeIndex();
  }
  segmentLoads.reused = state.ids.length;
  segmentLoads.fromStore = 0;
  segmentLoads.fromDisk = 0;
  const fresh = manifest.segments.slice(state.ids.length);
  // Fetched concurrently (a cold function reads many), appended in order.
  const loaded = await Promise.all(fresh.map((segment) => loadSegment(objects, segment, cacheDir)));
  for (const segment of loaded) {
    if (segment !== undefined) {
      // The first segment becomes the merged index as it was read (no copy of a large legacy index).
      if (state.index.size === 0 && state.index.vocabularySize === 0) state.index = segment;
      else state.index.append(segment);
    }
    state.ids.push(ids[state.ids.length] as string);
  }
}

const segmentId = (segment: IndexSegment) => segment.sha256 ?? `key:${segment.key}`;

async function loadSegment(
  objects: ObjectStore,
  segment: IndexSegment,
  cacheDir: string | undefined,
): Promise<RougeIndex | undefined> {
  const file =
    cacheDir !== undefined && segment.sha256 !== undefined
      ? join(cacheDir, `${segment.sha256}.bin`)
      : undefined;
  let bytes: Uint8Array | undefined =
    file === undefined ? undefined : await readFile(file).catch(() => undefined);
  if (bytes !== undefined && sha256(bytes) === segment.sha256) {
    segmentLoads.fromDisk++;
  } else {
    bytes = await objects.getBytes(segment.key);
    if (bytes === undefined) {
      if (segment.legacy) return undefined;
      throw new IndexSegmentInvalid(`Index segment ${segment.key} is missing`);
    }
    if (segment.sha256 !== undefined && sha256(bytes) !== segment.sha256) {
      throw new IndexSegmentInvalid(`Index segment ${segment.key} does not match its digest`);
    }
    segmentLoads.fromStore++;
    if (file !== undefined && cacheDir !== undefined) await keepOnDisk(cacheDir, file, bytes);
  }
  const index = RougeIndex.fromBuffer(bytes);
  if (segment.size !== undefined && index.size !== segment.size) {
    throw new IndexSegmentInvalid(
      `Index segment ${segment.key} has ${index.size} instructions, not ${segment.size}`,
    );
  }
  return index;
}

/** Best effort: a full or read-only `/tmp` only costs the next cold start a read from the store. */
async function keepOnDisk(dir: string, file: string, bytes: Uint8Array): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    const partial = `${file}.${process.pid}.part`;
    await writeFile(partial, bytes);
    await rename(partial, file);
  } catch {
    // not kept
  }
}

function cacheDirOf({ cacheDir }: SegmentCacheOptions): string | undefined {
  if (cacheDir !== undefined) return cacheDir === false ? undefined : cacheDir;
  const env = process.env.SELFINSTRUCT_INDEX_CACHE;
  if (env === 'off') return undefined;
  return env || join(tmpdir(), 'selfinstruct-index');
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Loads the whole committed index at `indexKey` into a new `RougeIndex` of its own (not the cached
 * one): for callers that keep or change it.
 */
export async function loadIndex(objects: ObjectStore, indexKey: string): Promise<RougeIndex> {
  const lease = await openPoolIndex(objects, await readManifest(objects, indexKey));
  try {
    const copy = new RougeIndex();
    copy.append(lease.index);
    return copy;
  } finally {
    lease.release();
  }
}
