/**
 * `method: evol` through the real stage cores on in-memory ports, with a scripted model whose replies
 * the tests choose: what "Generate instructions" evolves and eliminates, what "Filter and deduplicate"
 * counts and stores, what "Generate instances" eliminates, and "Prepare run" refusing a method this
 * build does not have.
 */
import { describe, expect, it } from 'vitest';
import { filterAndDeduplicate } from '../../functions/filter/core.ts';
import { generateInstances } from '../../functions/generate-instances/core.ts';
import { generateInstructions } from '../../functions/generate-instructions/core.ts';
import { GAIN_BATCH } from '../../functions/generate-instructions/evol.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { saveIteration } from '../../functions/save-iteration/core.ts';
import { RunInputInvalid } from '../../functions/shared/errors.ts';
import { fromJsonLines, toJsonLines } from '../../functions/shared/json-lines.ts';
import { taskId } from '../../functions/shared/pool-ids.ts';
import type { ModelReply, ModelRequest, TextModel } from '../../functions/shared/ports.ts';
import { GateRecord } from '../../functions/shared/records.ts';
import {
  type Candidate,
  EvolOperation,
  type Lineage,
  type RunState,
} from '../../functions/shared/schemas.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from './fakes.ts';

const SEEDS = SEED_TASKS.slice(0, 3);

/** Answers each request with `reply(request)`, recording the requests. */
class ScriptedModel implements TextModel {
  readonly id = 'offline';
  readonly requests: ModelRequest[] = [];
  constructor(private readonly reply: (request: ModelRequest, n: number) => string) {}
  async generate(request: ModelRequest): Promise<ModelReply> {
    this.requests.push(request);
    const text = this.reply(request, this.requests.length - 1);
    return {
      text,
      finish: 'stop',
      usage: { inputTokens: 10, outputTokens: 5, estimated: false },
      latencyMs: 1,
      model: this.id,
    };
  }
}

const givenOf = (prompt: string) => /Given Prompt#:\n(.*)\n/.exec(prompt)?.[1] ?? '';

/** Settings long and distinct enough that two evolutions of one task stay below the ROUGE-L threshold. */
const SETTINGS = [
  'Considering rural hospitals in northern Norway during the long polar night with few doctors,',
  'For a volunteer fire brigade planning its budget after a very dry summer season in Portugal,',
  'Imagining a medieval monastery library whose monks copy manuscripts by candlelight every winter,',
  'From the viewpoint of an astronaut repairing solar panels outside a crowded orbital station,',
  'Thinking of a small bakery that must feed a whole mountain village during a week of snowstorms,',
  'As a marine biologist counting coral species on a reef damaged by warm currents last spring,',
];

/**
 * Evolves by prefixing a distinct setting (the `n`th call's), copies the prompt's words for the first
 * seed, returns the second seed unchanged (no gain), and judges a pair equal when both are the same.
 */
function evolver(request: ModelRequest, n = 0): string {
  if (request.format === 'evol/evolve') {
    const given = givenOf(request.prompt);
    if (given === SEEDS[0]?.instruction) return `#Rewritten Prompt#: ${given} Use two examples.`;
    if (given === SEEDS[1]?.instruction) return given;
    return `${SETTINGS[n % SETTINGS.length]} ${given.toLowerCase()}`;
  }
  if (request.format === 'evol/equal') {
    const pairs = [...request.prompt.matchAll(/^First: (.*)\nSecond: (.*)$/gm)];
    return JSON.stringify({ verdicts: pairs.map(([, a, b]) => (a === b ? 'equal' : 'not equal')) });
  }
  throw new Error(`unexpected ${request.format}`);
}

async function prepared(input: object = {}) {
  const objects = new MemoryObjects();
  const pool = new MemoryPool();
  await objects.put('seeds/demo/seeds.jsonl', toJsonLines(SEEDS));
  const state = await prepareRun(
    {
      runId: 'run-1',
      input: { seedKey: 'seeds/demo/seeds.jsonl', method: 'evol', seed: 'fixed', ...input },
    },
    { objects, pool },
  );
  return { objects, pool, state };
}

async function generated(state: RunState, objects: MemoryObjects, pool: MemoryPool, model: TextModel) {
  const result = await generateInstructions(state, { objects, pool, model });
  const candidates = fromJsonLines<Candidate & { call: number }>(await objects.getText(result.candidatesKey));
  return { result, candidates };
}

describe('evol: generate instructions', () => {
  it('evolves one drawn pool instruction per call, with its lineage, and marks the copied and no-gain ones', async () => {
    const { objects, pool, state } = await prepared({ promptsPerIteration: 6 });
    const model = new ScriptedModel(evolver);

    const { result, candidates } = await generated(state, objects, pool, model);

    const evolving = model.requests.filter((request) => request.format === 'evol/evolve');
    const asking = model.requests.filter((request) => request.format === 'evol/equal');
    expect(result.prompts).toBe(6);
    expect(evolving).toHaveLength(6);
    // Each of the 3 seeds is drawn twice (distinct while there are enough).
    expect(evolving.map((request) => givenOf(request.prompt)).sort()).toEqual(
      SEEDS.flatMap((task) => [task.instruction, task.instruction]).sort(),
    );
    expect(candidates).toHaveLength(6);
    for (const candidate of candidates) {
      const parent = givenOf((evolving[candidate.call] as ModelRequest).prompt);
      expect(candidate.lineage).toMatchObject({ parent: taskId(parent), depth: 1 });
      expect(EvolOperation.options).toContain(candidate.lineage?.operation);
      const expected =
        parent === SEEDS[0]?.instruction
          ? 'evol-copied-prompt'
          : parent === SEEDS[1]?.instruction
            ? 'evol-no-gain'
            : undefined;
      expect(candidate.eliminated).toBe(expected);
    }
    // The information-gain question is asked once, for the 4 evolutions the copied-words rule kept.
    expect(asking).toHaveLength(1);
    expect([...(asking[0]?.prompt.matchAll(/^Pair \d+$/gm) ?? [])]).toHaveLength(4);
  });

  it('asks the information-gain question in batches of GAIN_BATCH pairs, each call in the ledger', async () => {
    const { objects, pool, state } = await prepared({ promptsPerIteration: 2 * GAIN_BATCH + 9 });
    const model = new ScriptedModel((request) =>
      request.format === 'evol/equal'
        ? evolver(request)
        : `A new task about ${request.prompt.length} things.`,
    );

    await generated(state, objects, pool, model);

    const asking = model.requests.filter((request) => request.format === 'evol/equal');
    expect(asking.map((request) => request.prompt.match(/^Pair \d+$/gm)?.length)).toEqual([
      GAIN_BATCH,
      GAIN_BATCH,
      9,
    ]);
    const ledger = [...pool.calls.keys()].filter((key) => key.includes('#gain-'));
    expect(ledger).toHaveLength(3);
  });

  it('counts a missing verdict on the candidate and keeps it', async () => {
    const { objects, pool, state } = await prepared({ promptsPerIteration: 3 });
    const model = new ScriptedModel((request) =>
      request.format === 'evol/equal' ? '{"verdicts": ["not equal"]}' : evolver(request),
    );

    const { candidates } = await generated(state, objects, pool, model);

    const judged = candidates.filter((candidate) => candidate.eliminated === undefined);
    expect(judged.map((candidate) => candidate.gainUnparseable)).toEqual(
      [undefined, true].slice(0, judged.length),
    );
  });

  it('gives a child of an evolved machine task its parent’s depth + 1', async () => {
    const { objects, pool, state } = await prepared({ promptsPerIteration: 3, judgeModel: 'none' });
    const model = new ScriptedModel((request) =>
      request.format === 'evol/evolve' || request.format === 'evol/equal'
        ? evolver(request)
        : request.format === 'classify/default'
          ? '{"is_classification": false}'
          : '{"instances": [{"input": "", "output": "Clinics there rely on telemedicine."}]}',
    );
    // Iteration 1 evolves the seeds; its tasks join the pool when "Save iteration" commits.
    const first = await generated(state, objects, pool, model);
    const gated = await filterAndDeduplicate(
      { ...state, candidatesKey: first.result.candidatesKey },
      {
        objects,
        pool,
      },
    );
    const instances = await Promise.all(
      gated.chunks.map((chunk) => generateInstances({ ...state, chunk }, { objects, pool, model })),
    );
    const next = await saveIteration(
      { ...state, generated: first.result, gated, instances },
      { objects, pool },
    );
    const evolved = [...pool.tasks.values()].filter((task) => task.lineage !== undefined);
    expect(evolved.length).toBeGreaterThan(0);
    // Make the pool's evolved tasks depth 2, as if evolved from evolved ones.
    for (const task of evolved) task.lineage = { ...(task.lineage as Lineage), depth: 2 };

    const second = await generated(next, objects, pool, model);

    const fromMachine = second.candidates.filter((c) =>
      evolved.some((task) => task.id === c.lineage?.parent),
    );
    const fromSeeds = second.candidates.filter((c) => !fromMachine.includes(c));
    expect(fromMachine.length).toBeGreaterThan(0);
    expect(fromMachine.every((candidate) => candidate.lineage?.depth === 3)).toBe(true);
    expect(fromSeeds.every((candidate) => candidate.lineage?.depth === 1)).toBe(true);
  });
});

describe('evol: filter and deduplicate', () => {
  it('counts the eliminated candidates by rule, never adds them, and keeps the lineage of the others', async () => {
    const { objects, pool, state } = await prepared({ promptsPerIteration: 6 });
    const { result } = await generated(state, objects, pool, new ScriptedModel(evolver));

    const gated = await filterAndDeduplicate(
      { ...state, candidatesKey: result.candidatesKey },
      { objects, pool },
    );

    expect(gated.counts).toMatchObject({ generated: 6, 'evol-copied-prompt': 2, 'evol-no-gain': 2 });
    const lines = fromJsonLines(await objects.getText(gated.decisionsKey)).map((line) =>
      GateRecord.parse(line),
    );
    expect(lines.every((line) => line.lineage?.depth === 1)).toBe(true);
    const ids = gated.chunks.flatMap((chunk) => chunk.ids);
    const tasks = await pool.getTasks('demo', ids);
    expect(tasks.length).toBe(gated.counts.accepted);
    expect(tasks.every((task) => task.lineage?.depth === 1 && !/Rewritten/.test(task.instruction))).toBe(
      true,
    );
  });
});

describe('evol: generate instances', () => {
  it('eliminates a task whose response apologizes, and one whose response is only stop words', async () => {
    const { objects, pool, state } = await prepared({ promptsPerIteration: 9, judgeModel: 'none' });
    const { result } = await generated(state, objects, pool, new ScriptedModel(evolver));
    const gated = await filterAndDeduplicate(
      { ...state, candidatesKey: result.candidatesKey },
      { objects, pool },
    );
    const ids = gated.chunks.flatMap((chunk) => chunk.ids);
    const outputs = ["Sorry, I can't answer that.", '... and the, of it?!'];
    let call = 0;
    const model = new ScriptedModel((request) => {
      if (request.format === 'classify/default') return '{"is_classification": false}';
      const output = outputs[call++] ?? 'Fjord clinics rely on telemedicine and generators.';
      return JSON.stringify({ instances: [{ input: '', output }] });
    });

    const done = await generateInstances({ ...state, chunk: { index: 0, ids } }, { objects, pool, model });

    expect(ids.length).toBeGreaterThanOrEqual(2);
    expect(done.counts).toMatchObject({
      'evol-could-not-answer': 1,
      'evol-stopwords-only': 1,
      complete: ids.length - 2,
    });
  });
});

describe('evol: prepare run', () => {
  it('refuses documents, which only backtranslation reads, before writing or calling anything', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();

    const run = prepareRun(
      { runId: 'run-1', input: { method: 'evol', documents: 'documents/legal/' } },
      { objects, pool },
    );

    await expect(run).rejects.toThrow(RunInputInvalid);
    await expect(run).rejects.toThrow('method: documents are read by method backtranslate only');
    expect(pool.tasks.size).toBe(0);
    expect(await pool.getRun('run-1')).toBeUndefined();
  });
});
