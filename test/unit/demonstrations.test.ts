import { describe, expect, it } from 'vitest';
import {
  EMPTY_SAMPLE,
  EXACT_DEMONSTRATIONS,
  extendSample,
  GROUP_SAMPLE,
  MachineDemonstrations,
  machineDemonstrations,
  SampledDemonstrations,
} from '../../functions/shared/demonstrations.ts';
import { RougeIndex } from '../../functions/shared/engine/gate.ts';
import { appendSegment, EMPTY_MANIFEST } from '../../functions/shared/pool-index.ts';
import { createRng } from '../../functions/shared/random.ts';
import { MachineSample } from '../../functions/shared/records.ts';
import { MemoryObjects } from './fakes.ts';

const tasks = (word: string, n: number) => Array.from({ length: n }, (_, i) => `${word} task number ${i}.`);

describe('the machine demonstrations sample', () => {
  it('lists every machine task in pool order up to the limit, so sampling is the paper’s exactly', () => {
    const pool = [...tasks('Write', 30), ...tasks('List', 20)];
    const sample = extendSample(
      extendSample(EMPTY_SAMPLE, pool.slice(0, 10), createRng('a')),
      pool.slice(10),
      createRng('b'),
    );
    expect(sample.tasks).toEqual(pool);
    expect(sample.machine).toBe(50);
    expect(sample.groups.map((g) => [g.word, g.count, g.sample.length])).toEqual([
      ['write', 30, GROUP_SAMPLE],
      ['list', 20, GROUP_SAMPLE],
    ]);
  });

  it('keeps per leading word a count and at most GROUP_SAMPLE of its tasks past the limit, the same for the same seed', () => {
    const pool = [...tasks('Write', EXACT_DEMONSTRATIONS), ...tasks('Classify', 40)];
    const sample = extendSample(EMPTY_SAMPLE, pool, createRng('s'));
    expect(sample.tasks).toBeUndefined();
    expect(sample.groups.map((g) => [g.word, g.count])).toEqual([
      ['write', EXACT_DEMONSTRATIONS],
      ['classify', 40],
    ]);
    for (const group of sample.groups) expect(new Set(group.sample).size).toBe(GROUP_SAMPLE);
    expect(extendSample(EMPTY_SAMPLE, pool, createRng('s'))).toEqual(sample);
    expect(MachineSample.parse(JSON.parse(JSON.stringify(sample)))).toEqual(sample);
    // The reservoir reaches past its first GROUP_SAMPLE tasks.
    expect(
      sample.groups[0]?.sample.some(
        (task) => !task.endsWith(` ${GROUP_SAMPLE - 1}.`) && /\d{2,}\./.test(task),
      ),
    ).toBe(true);
  });

  it('draws each machine task with probability 1 / pool, uniform, and words uniformly when diverse', () => {
    const sample = extendSample(
      EMPTY_SAMPLE,
      [...tasks('Write', 9000), ...tasks('List', 900), ...tasks('Plan', 100)],
      createRng('x'),
    );
    const uniform = new SampledDemonstrations(sample, false);
    const diverse = new SampledDemonstrations(sample, true);
    const rng = createRng('draws');
    const seen = { uniform: new Map<string, number>(), diverse: new Map<string, number>() };
    for (let i = 0; i < 4000; i++) {
      const [a, b] = uniform.sample(2, rng);
      expect(a?.instruction).not.toBe(b?.instruction);
      for (const [kind, [task]] of [
        ['uniform', [a]],
        ['diverse', diverse.sample(1, rng)],
      ] as const) {
        const word = task?.instruction.split(' ')[0] as string;
        seen[kind].set(word, (seen[kind].get(word) ?? 0) + 1);
      }
    }
    // 90% / 9% / 1% of the pool; a third each when diverse.
    expect((seen.uniform.get('Write') ?? 0) / 4000).toBeCloseTo(0.9, 1);
    expect((seen.uniform.get('Plan') ?? 0) / 4000).toBeLessThan(0.03);
    for (const word of ['Write', 'List', 'Plan'])
      expect((seen.diverse.get(word) ?? 0) / 4000).toBeCloseTo(1 / 3, 1);
  });

  it('gives "Generate instructions" the paper’s list from the sample file, or from the index of a pool without one', async () => {
    const objects = new MemoryObjects();
    const seeds = ['Seed one is here.', 'Seed two is here.'];
    const machine = tasks('Write', 5);
    // A pool committed before sample files: its index, seeds first.
    await objects.put('pools/p/rouge-index.bin', RougeIndex.from([...seeds, ...machine]).toBuffer());
    const fromIndex = await machineDemonstrations(
      objects,
      { indexKey: 'pools/p/rouge-index.bin' },
      { seeds: new Set(seeds), diverse: false },
    );
    expect(fromIndex).toEqual(machine.map((instruction) => ({ instruction })));
    // One with a sample file: read from it, the index untouched.
    const manifest = await appendSegment(objects, EMPTY_MANIFEST, { writeTo: 's', key: 's' }, seeds);
    await objects.put('d.json', JSON.stringify(extendSample(EMPTY_SAMPLE, machine, createRng('d'))));
    await objects.put('m.json', JSON.stringify({ ...manifest, demonstrations: 'd.json' }));
    objects.objects.delete('s');
    const fromFile = await machineDemonstrations(
      objects,
      { indexKey: 'm.json' },
      { seeds: new Set(seeds), diverse: true },
    );
    expect(fromFile).toBeInstanceOf(MachineDemonstrations);
    expect((fromFile as MachineDemonstrations).sample(1, createRng('k'))[0]?.instruction).toMatch(
      /^Write task/,
    );
  });
});
