import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FilterInput, filterAndDeduplicate } from '../../functions/filter/core.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { gate, RougeIndex } from '../../functions/shared/engine/gate.ts';
import { fromJsonLines, toJsonLines } from '../../functions/shared/json-lines.ts';
import { poolKeys, runKeys } from '../../functions/shared/keys.ts';
import {
  appendSegment,
  EMPTY_MANIFEST,
  IndexSegmentInvalid,
  openPoolIndex,
  readManifest,
  segmentLoads,
} from '../../functions/shared/pool-index.ts';
import type { IndexManifest } from '../../functions/shared/records.ts';
import { syntheticInstructions } from '../support/synthetic-pool.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from './fakes.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
const cacheDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'segments-'));
  dirs.push(dir);
  return dir;
};

/** An object store that counts its reads. */
class CountingObjects extends MemoryObjects {
  reads = 0;
  override async getBytes(key: string) {
    this.reads++;
    return super.getBytes(key);
  }
}

/** `parts` written as segments one after another; the manifest that lists them. */
async function segmented(objects: MemoryObjects, parts: readonly string[][]): Promise<IndexManifest> {
  let manifest = EMPTY_MANIFEST;
  for (const [i, texts] of parts.entries()) {
    const key = `pools/p/segments/run-1/iteration-${i}.bin`;
    manifest = await appendSegment(objects, manifest, { writeTo: key, key }, texts);
  }
  return manifest;
}

const POOL = syntheticInstructions(900, 'pool');
const PARTS = [POOL.slice(0, 400), POOL.slice(400, 401), POOL.slice(401, 700), POOL.slice(700)];

describe('the segmented pool index', () => {
  it('merges its segments into the index one object of the same instructions is, byte for byte', async () => {
    const objects = new MemoryObjects();
    const lease = await openPoolIndex(objects, await segmented(objects, PARTS), { cacheDir: false });
    try {
      expect(lease.size).toBe(POOL.length);
      expect(lease.index.toBuffer()).toEqual(RougeIndex.from(POOL).toBuffer());
    } finally {
      lease.release();
    }
  });

  it('writes the same segment under the same key when an append is repeated (a retried stage)', async () => {
    const objects = new MemoryObjects();
    const first = await segmented(objects, PARTS.slice(0, 2));
    const bytes = objects.objects.get('pools/p/segments/run-1/iteration-1.bin');
    const again = await segmented(objects, PARTS.slice(0, 2));
    expect(again).toEqual(first);
    expect(objects.objects.get('pools/p/segments/run-1/iteration-1.bin')).toEqual(bytes);
    // Nothing accepted: no segment, the same manifest.
    const key = 'pools/p/segments/run-1/iteration-9.bin';
    expect(await appendSegment(objects, first, { writeTo: key, key }, [])).toBe(first);
    expect(objects.objects.has(key)).toBe(false);
  });

  it('loads only the segments committed since its last call, on the same store', async () => {
    const objects = new CountingObjects();
    const all = await segmented(objects, PARTS);
    const first = { ...all, segments: all.segments.slice(0, 2) };
    (await openPoolIndex(objects, first, { cacheDir: false })).release();
    expect(segmentLoads).toEqual({ reused: 0, fromStore: 2, fromDisk: 0 });
    objects.reads = 0;
    const lease = await openPoolIndex(objects, all, { cacheDir: false });
    lease.release();
    expect(segmentLoads).toEqual({ reused: 2, fromStore: 2, fromDisk: 0 });
    expect(objects.reads).toBe(2);
    expect(lease.index.toBuffer()).toEqual(RougeIndex.from(POOL).toBuffer());
  });

  it('keeps segment bytes on disk by digest, so another function instance reads them from there', async () => {
    const dir = await cacheDir();
    const objects = new MemoryObjects();
    const manifest = await segmented(objects, PARTS);
    (await openPoolIndex(objects, manifest, { cacheDir: dir })).release();
    expect(segmentLoads.fromStore).toBe(4);
    // A new store object: nothing in memory, every segment on disk. A copy of the bucket without the
    // segments proves they came from there.
    const cold = new CountingObjects();
    const lease = await openPoolIndex(cold, manifest, { cacheDir: dir });
    lease.release();
    expect(segmentLoads).toEqual({ reused: 0, fromStore: 0, fromDisk: 4 });
    expect(cold.reads).toBe(0);
    expect(lease.index.toBuffer()).toEqual(RougeIndex.from(POOL).toBuffer());
  });

  it('gives the index back as lent: what the gate added is gone, vocabulary included', async () => {
    const objects = new MemoryObjects();
    const manifest = await segmented(objects, PARTS);
    const lease = await openPoolIndex(objects, manifest, { cacheDir: false });
    const before = lease.index.toBuffer();
    gate(lease.index, [
      'Xylophones quietly hum zebra tunes for ninety wombats.',
      ...syntheticInstructions(50, 'new'),
    ]);
    expect(lease.index.size).toBeGreaterThan(POOL.length);
    lease.release();
    const again = await openPoolIndex(objects, manifest, { cacheDir: false });
    try {
      expect(segmentLoads.fromStore).toBe(0);
      expect(again.index.size).toBe(POOL.length);
      expect(again.index.tokenId('xylophones')).toBeUndefined();
      expect(again.index.toBuffer()).toEqual(before);
    } finally {
      again.release();
    }
  });

  it('scores as a fresh index does after a rollback, even when a new segment reuses a rolled-back length id', async () => {
    const objects = new MemoryObjects();
    const words = (n: number, word: string) =>
      Array.from({ length: n }, (_, i) => `${word}${i % 7}`).join(' ');
    const base = ['Plan a short trip.', 'Write a long letter home.', 'List four ripe fruits now.'];
    const first = await segmented(objects, [base]);
    const lease = await openPoolIndex(objects, first, { cacheDir: false });
    // A length the pool lacks (20 tokens), accepted, then a later batch's candidate of 25 tokens scored
    // against it: its score table gains a row for that length. Then it is all rolled back.
    const fillers = Array.from(
      { length: 40 },
      (_, i) => `Filler number ${i} ${words(3 + (i % 3), `f${i}x`)}.`,
    );
    gate(lease.index, [words(20, 'alpha'), ...fillers, words(25, 'gamma')]);
    lease.release();
    // A retried stage: the same committed pool, gated again.
    const retry = await openPoolIndex(objects, first, { cacheDir: false });
    try {
      expect(gate(retry.index, [words(25, 'gamma'), ...fillers])).toEqual(
        gate(RougeIndex.from(base), [words(25, 'gamma'), ...fillers]),
      );
    } finally {
      retry.release();
    }
    const key = 'pools/p/segments/run-1/iteration-5.bin';
    const second = await appendSegment(objects, first, { writeTo: key, key }, [words(30, 'beta')]);
    const candidates = [words(20, 'alpha'), words(30, 'beta'), words(25, 'beta')];
    const again = await openPoolIndex(objects, second, { cacheDir: false });
    try {
      expect(gate(again.index, candidates)).toEqual(
        gate(RougeIndex.from([...base, words(30, 'beta')]), candidates),
      );
    } finally {
      again.release();
    }
  });

  it('reads an index stored whole (before segments) as one segment, and a missing one as empty', async () => {
    const objects = new MemoryObjects();
    await objects.put('pools/p/index/run-0/iteration-3.bin', RougeIndex.from(POOL).toBuffer());
    const legacy = await readManifest(objects, 'pools/p/index/run-0/iteration-3.bin');
    expect(legacy.segments).toEqual([{ key: 'pools/p/index/run-0/iteration-3.bin', legacy: true }]);
    const next = await appendSegment(objects, legacy, { writeTo: 'n', key: 'n' }, [
      'Plan a picnic for six friends.',
    ]);
    const lease = await openPoolIndex(objects, next, { cacheDir: false });
    try {
      expect(lease.index.toBuffer()).toEqual(
        RougeIndex.from([...POOL, 'Plan a picnic for six friends.']).toBuffer(),
      );
    } finally {
      lease.release();
    }
    const missing = await openPoolIndex(
      new MemoryObjects(),
      await readManifest(objects, 'pools/q/rouge-index.bin'),
    );
    expect(missing.size).toBe(0);
    missing.release();
  });

  it('refuses a segment that is missing or not the one its manifest names', async () => {
    const objects = new MemoryObjects();
    const manifest = await segmented(objects, PARTS.slice(0, 2));
    await objects.put(
      manifest.segments[1]?.key as string,
      RougeIndex.from(['Something else entirely here.']).toBuffer(),
    );
    await expect(openPoolIndex(objects, manifest, { cacheDir: false })).rejects.toThrow(IndexSegmentInvalid);
    objects.objects.delete(manifest.segments[1]?.key as string);
    await expect(openPoolIndex(new MemoryObjects(), manifest, { cacheDir: false })).rejects.toThrow(
      /missing/,
    );
  });

  it('gives the gate the same decisions, scores, top-10 and means as the index stored whole', async () => {
    const objects = new MemoryObjects();
    const candidates = [...syntheticInstructions(300, 'candidates'), ...POOL.slice(100, 110)];
    const whole = gate(RougeIndex.from(POOL), candidates);
    const lease = await openPoolIndex(objects, await segmented(objects, PARTS), { cacheDir: false });
    try {
      const parts = gate(lease.index, candidates);
      expect(parts).toEqual(whole);
      expect(whole.filter((result) => result.accepted).length).toBeGreaterThan(0);
      expect(whole.filter((result) => !result.accepted).length).toBeGreaterThan(0);
    } finally {
      lease.release();
    }
  });
});

describe('Filter and deduplicate on a segmented pool', () => {
  /** A prepared pool of the seeds plus `machine` committed as one more segment, or as one legacy object. */
  async function pool(machine: readonly string[], layout: 'segments' | 'whole', input: object = {}) {
    const objects = new MemoryObjects();
    const store = new MemoryPool();
    await objects.put('seeds/demo/seeds.jsonl', toJsonLines(SEED_TASKS));
    const state = await prepareRun(
      { runId: 'run-1', input: { seedKey: 'seeds/demo/seeds.jsonl', ...input } },
      { objects, pool: store },
    );
    const meta = store.metas.get('demo');
    if (meta === undefined) throw new Error('no pool');
    const seeds = SEED_TASKS.map((task) => task.instruction);
    if (layout === 'whole') {
      meta.indexKey = 'pools/demo/index/run-0/iteration-7.bin';
      await objects.put(meta.indexKey, RougeIndex.from([...seeds, ...machine]).toBuffer());
    } else {
      const manifest = await appendSegment(
        objects,
        await readManifest(objects, meta.indexKey as string),
        {
          writeTo: 'pools/demo/segments/run-0/iteration-7.bin',
          key: 'pools/demo/segments/run-0/iteration-7.bin',
        },
        machine,
      );
      meta.indexKey = poolKeys('demo').indexVersion('run-0', 7);
      await objects.put(meta.indexKey, JSON.stringify(manifest));
    }
    return { objects, store, state };
  }

  async function filter(layout: 'segments' | 'whole', candidates: readonly string[], input: object = {}) {
    const { objects, store, state } = await pool(POOL.slice(0, 300), layout, input);
    const key = runKeys('run-1', 1).candidates;
    await objects.put(key, toJsonLines(candidates.map((instruction) => ({ instruction }))));
    const result = await filterAndDeduplicate(FilterInput.parse({ ...state, candidatesKey: key }), {
      objects,
      pool: store,
    });
    const manifest = await readManifest(objects, runKeys('run-1', 1).index);
    return { result, gate: await objects.getText(result.decisionsKey), manifest, objects };
  }

  it('reaches the same decisions, counts and ids as on the pool index stored whole', async () => {
    const candidates = [...syntheticInstructions(200, 'filter'), POOL[5] as string, POOL[250] as string];
    const segments = await filter('segments', candidates);
    const whole = await filter('whole', candidates);
    expect(segments.result).toEqual(whole.result);
    expect(segments.gate).toEqual(whole.gate);
    expect(segments.result.counts.rouge).toBeGreaterThan(0);
    // The iteration's staged manifest: the committed segments plus one of what the gate accepted.
    const last = segments.manifest.segments.at(-1);
    expect(last).toMatchObject({
      key: poolKeys('demo').segment('run-1', 1),
      size: segments.result.counts.accepted,
    });
    const staged = RougeIndex.fromBuffer(
      segments.objects.objects.get(runKeys('run-1', 1).segment) as Uint8Array,
    );
    const accepted = fromJsonLines<{ instruction: string; status: string }>(segments.gate ?? '')
      .filter((d) => d.status === 'accepted')
      .map((d) => d.instruction);
    expect(staged.instructions).toEqual(accepted);
  });

  it('rejects an exact duplicate of the pool or of the batch as `duplicate` under a threshold of 1', async () => {
    const candidates = [
      `  ${(POOL[42] as string).toUpperCase()}  `, // the pool's, cased and spaced differently
      'Plan a quiet weekend of reading for two tired parents.',
      'plan a quiet weekend of reading for two tired parents.', // the batch's
      'Plan a quiet weekend of reading, for two tired parents!', // same tokens, not the same instruction
    ];
    for (const layout of ['segments', 'whole'] as const) {
      const { gate: lines, result } = await filter(layout, candidates, {
        rougeThreshold: 1,
        embeddingModel: 'none',
      });
      const reasons = fromJsonLines<{ reason: string | null }>(lines ?? '').map((d) => d.reason);
      expect(reasons).toEqual(['duplicate', null, 'duplicate', null]);
      expect(result.counts).toMatchObject({ generated: 4, accepted: 2, duplicate: 2 });
    }
  });
});
