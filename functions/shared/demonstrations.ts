/**
 * The machine tasks "Generate instructions" shows as demonstrations, sampled without loading the pool's
 * index: each commit writes a small sample file (`MachineSample`) next to its index manifest, built from
 * the previous one and the instructions the commit added, so the stage reads one bounded file however
 * large the pool.
 *
 * The sampling's distribution:
 * - while the pool has at most `EXACT_DEMONSTRATIONS` machine tasks, the file lists them all, in pool
 *   order, and sampling is exactly the paper's (uniform, without replacement) or, with
 *   `diverseDemonstrations`, uniform over leading words then uniform within one;
 * - above that, per leading word, the file keeps the count and a uniform sample of at most
 *   `GROUP_SAMPLE` tasks (reservoir sampling, seeded by the committing run and iteration, so a retried
 *   stage writes the same file). Uniform sampling draws a word with probability count / machine tasks,
 *   then one of its sampled tasks uniformly, redrawing a task already drawn for the same prompt: each
 *   draw picks each machine task with probability 1 / machine tasks, as the paper's. Diverse sampling
 *   draws distinct words uniformly, then one of each word's sampled tasks uniformly, as below the limit.
 *
 * Every attempt of the stage reads the same committed file and draws with the same seeded generator,
 * so it shows the same demonstrations.
 */

import { fromJsonLines } from './json-lines.ts';
import { type CommittedPool, openPoolIndex, readManifest } from './pool-index.ts';
import type { ObjectStore } from './ports.ts';
import type { Rng } from './random.ts';
import { type IndexManifest, MachineSample } from './records.ts';
import type { SeedTask } from './schemas.ts';

/** Machine tasks the sample file lists whole (exact sampling) before it keeps per-word samples only. */
export const EXACT_DEMONSTRATIONS = 5000;

/** Tasks kept per leading word above `EXACT_DEMONSTRATIONS`. */
export const GROUP_SAMPLE = 8;

/** A demonstration as the sampler returns it (the instruction; the stage adds nothing else for machine tasks). */
export interface MachineTask {
  instruction: string;
}

/** Something that draws `k` machine demonstrations for one prompt. */
export interface DemonstrationSampler {
  sample(k: number, rng: Rng): MachineTask[];
}

/** An instruction's leading word (the root verb of an imperative one), lower-cased, letters and digits only. */
export function leadingWord(instruction: string): string {
  return (
    instruction
      .trim()
      .split(/\s+/, 1)[0]
      ?.toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, '') ?? ''
  );
}

/**
 * Machine demonstrations sampled diversity-aware (run input `diverseDemonstrations`): grouped by their
 * leading word (the root verb of an imperative instruction, "Write", "Classify", …), a sample takes
 * distinct groups uniformly, then one task of each, so a verb the pool has ten tasks of is shown as
 * often as one it has a thousand of. Uniform sampling, the paper's, shows the pool's majority verbs and
 * so reinforces them.
 */
export class MachineDemonstrations<T extends MachineTask = MachineTask> implements DemonstrationSampler {
  readonly #groups: T[][];

  constructor(tasks: readonly T[]) {
    const groups = new Map<string, T[]>();
    for (const task of tasks) {
      const word = leadingWord(task.instruction);
      const group = groups.get(word);
      if (group) group.push(task);
      else groups.set(word, [task]);
    }
    this.#groups = [...groups.values()];
  }

  /** `k` tasks of `k` distinct leading words (fewer when the pool has fewer words). */
  sample(k: number, rng: Rng): T[] {
    return rng.sample(this.#groups, k).map((group) => rng.sample(group, 1)[0] as T);
  }
}

/** Draws from the per-word samples of a `MachineSample` (above `EXACT_DEMONSTRATIONS`; see the module). */
export class SampledDemonstrations implements DemonstrationSampler {
  readonly #groups: MachineSample['groups'];
  readonly #cumulative: number[];
  readonly #diverse: boolean;
  readonly #total: number;

  constructor(sample: MachineSample, diverse: boolean) {
    this.#groups = sample.groups.filter((group) => group.sample.length > 0);
    let total = 0;
    this.#cumulative = this.#groups.map((group) => {
      total += group.count;
      return total;
    });
    this.#total = total;
    this.#diverse = diverse;
  }

  sample(k: number, rng: Rng): MachineTask[] {
    if (this.#diverse) {
      return rng
        .sample(this.#groups, k)
        .map((group) => ({ instruction: rng.sample(group.sample, 1)[0] as string }));
    }
    const want = Math.min(k, this.#total);
    const picked: string[] = [];
    // Redraws of a task already picked are rare (two draws of one task); bounded all the same.
    for (let draw = 0; picked.length < want && draw < 100 * want; draw++) {
      const group = this.#groups[this.#groupAt(rng.int(this.#total))] as MachineSample['groups'][number];
      const task = group.sample[rng.int(group.sample.length)] as string;
      if (!picked.includes(task)) picked.push(task);
    }
    return picked.map((instruction) => ({ instruction }));
  }

  /** The group holding the `n`-th task (0-based) in the cumulative counts. */
  #groupAt(n: number): number {
    let low = 0;
    let high = this.#cumulative.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((this.#cumulative[mid] as number) > n) high = mid;
      else low = mid + 1;
    }
    return low;
  }
}

/** The sample of an empty pool. */
export const EMPTY_SAMPLE: MachineSample = { version: 1, machine: 0, tasks: [], groups: [] };

/**
 * `previous` with the machine instructions `added` (in pool order): a new object, `previous` unchanged.
 * `rng` drives the reservoirs: seed it with the committing run and iteration.
 */
export function extendSample(previous: MachineSample, added: readonly string[], rng: Rng): MachineSample {
  const groups = previous.groups.map((group) => ({ ...group, sample: [...group.sample] }));
  const byWord = new Map(groups.map((group) => [group.word, group]));
  let tasks = previous.tasks && [...previous.tasks];
  let machine = previous.machine;
  for (const instruction of added) {
    machine++;
    // Listed whole up to the limit; past it, the per-word samples only.
    if (machine > EXACT_DEMONSTRATIONS) tasks = undefined;
    else tasks?.push(instruction);
    const word = leadingWord(instruction);
    let group = byWord.get(word);
    if (group === undefined) {
      group = { word, count: 0, sample: [] };
      byWord.set(word, group);
      groups.push(group);
    }
    group.count++;
    if (group.sample.length < GROUP_SAMPLE) group.sample.push(instruction);
    else {
      const slot = rng.int(group.count);
      if (slot < GROUP_SAMPLE) group.sample[slot] = instruction;
    }
  }
  return { version: 1, machine, ...(tasks === undefined ? {} : { tasks }), groups };
}

/**
 * The sample file of the committed pool (`manifest`'s), or, for a pool whose commit has none yet, one
 * built from its index: `committedTexts()` (the index's instructions) less its seeds (`seedsKey`).
 */
export async function committedSample(
  objects: ObjectStore,
  manifest: IndexManifest,
  seedsKey: string,
  committedTexts: () => readonly string[],
  rng: Rng,
): Promise<MachineSample> {
  if (manifest.demonstrations !== undefined) {
    return MachineSample.parse(JSON.parse((await objects.getText(manifest.demonstrations)) ?? 'null'));
  }
  const seeds = new Set(
    fromJsonLines<SeedTask>((await objects.getText(seedsKey)) ?? '').map((task) => task.instruction.trim()),
  );
  return extendSample(
    EMPTY_SAMPLE,
    committedTexts().filter((instruction) => !seeds.has(instruction)),
    rng,
  );
}

/**
 * The machine demonstrations of the committed pool, for `selectDemonstrations`: the paper's list (or
 * `MachineDemonstrations` of it when `diverse`) while the sample file lists every task, else a
 * `SampledDemonstrations`. `seeds`: the pool's seed instructions (trimmed), never shown as machine tasks.
 * A pool whose commit has no sample file yet (committed before them, or only its seeds) is read from
 * its index, once.
 */
export async function machineDemonstrations(
  objects: ObjectStore,
  committed: Pick<CommittedPool, 'indexKey'>,
  { seeds, diverse }: { seeds: ReadonlySet<string>; diverse: boolean },
): Promise<readonly MachineTask[] | DemonstrationSampler> {
  const manifest = await readManifest(objects, committed.indexKey);
  let tasks: string[] | undefined;
  if (manifest.demonstrations === undefined) {
    const lease = await openPoolIndex(objects, manifest);
    try {
      tasks = lease.index.instructions.slice(0, lease.size) as string[];
    } finally {
      lease.release();
    }
  } else {
    const sample = MachineSample.parse(
      JSON.parse((await objects.getText(manifest.demonstrations)) ?? 'null'),
    );
    if (sample.tasks === undefined) return new SampledDemonstrations(sample, diverse);
    tasks = sample.tasks;
  }
  const machine = tasks
    .filter((instruction) => !seeds.has(instruction))
    .map((instruction) => ({ instruction }));
  return diverse ? new MachineDemonstrations(machine) : machine;
}
