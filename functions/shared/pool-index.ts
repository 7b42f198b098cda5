/** Loading and saving a pool's persisted ROUGE-L index (S3), so no Lambda re-tokenizes the pool. */
import { RougeIndex } from './engine/gate.ts';
import { poolKeys } from './keys.ts';
import type { ObjectStore, PoolMeta, PoolStore } from './ports.ts';

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

/** The index stored at `key`, or `undefined` when there is none yet. */
export async function loadIndex(objects: ObjectStore, key: string): Promise<RougeIndex | undefined> {
  const bytes = await objects.getBytes(key);
  return bytes === undefined ? undefined : RougeIndex.fromBuffer(bytes);
}

/** Adds `instructions` to `index` (a new one when undefined) and stores it at `key`. */
export async function saveIndex(
  objects: ObjectStore,
  key: string,
  index: RougeIndex | undefined,
  instructions: readonly string[],
): Promise<RougeIndex> {
  const target = index ?? new RougeIndex();
  for (const instruction of instructions) target.add(instruction);
  await objects.put(key, target.toBuffer());
  return target;
}
