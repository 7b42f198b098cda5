/**
 * "Generate instructions" as a Map of batches (`generate-instructions/batches.ts`): the plan's split, the
 * batch step and its deterministic keys, the collection, and a batch run twice (Retry, a duplicated Map
 * item, a redrive), on in-memory ports with the deterministic offline model.
 */
import { describe, expect, it } from 'vitest';
import {
  collectInstructions,
  generateInstructionBatch,
  type InstructionBatch,
  planBatches,
  planInstructions,
  runInstructionsStep,
} from '../../functions/generate-instructions/batches.ts';
import { generateInstructions } from '../../functions/generate-instructions/core.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { IterationIncomplete } from '../../functions/shared/errors.ts';
import { fromJsonLines, toJsonLines } from '../../functions/shared/json-lines.ts';
import { runKeys } from '../../functions/shared/keys.ts';
import { callKeyPrefix, INSTRUCTIONS_SCOPE } from '../../functions/shared/model-calls.ts';
import type { Candidate } from '../../functions/shared/schemas.ts';
import { BilledModel, MemoryObjects, MemoryPool, SEED_TASKS as SEEDS } from './fakes.ts';

async function world(input: Record<string, unknown> = {}) {
  const objects = new MemoryObjects();
  const pool = new MemoryPool();
  const model = new BilledModel('batches');
  await objects.put('seeds/demo/seeds.jsonl', toJsonLines(SEEDS));
  const state = await prepareRun(
    {
      runId: 'run-1',
      input: {
        seedKey: 'seeds/demo/seeds.jsonl',
        seed: 'fixed',
        promptsPerIteration: 7,
        instructionBatchSize: 3,
        ...input,
      },
    },
    { objects, pool },
  );
  return { objects, pool, model, state, deps: { objects, pool, model } };
}

type World = Awaited<ReturnType<typeof world>>;

/** Plan, every batch, collect: what the state machine runs. */
async function batched({ state, deps }: World) {
  const plan = await planInstructions(state, deps);
  for (const batch of plan.batches) await generateInstructionBatch(state, plan.prompts, batch, deps);
  return { plan, result: await collectInstructions(state, plan.batches, deps) };
}

const candidatesOf = async (objects: MemoryObjects, key: string) =>
  fromJsonLines<Candidate & { call: number }>(await objects.getText(key));

describe('plan instructions', () => {
  it('splits the calls into batches of instructionBatchSize, in order, the last one smaller', () => {
    expect(planBatches(7, 3)).toEqual([
      { batch: 0, from: 0, to: 3 },
      { batch: 1, from: 3, to: 6 },
      { batch: 2, from: 6, to: 7 },
    ]);
    expect(planBatches(40, 20)).toEqual([
      { batch: 0, from: 0, to: 20 },
      { batch: 1, from: 20, to: 40 },
    ]);
    expect(planBatches(5, 20)).toEqual([{ batch: 0, from: 0, to: 5 }]);
  });

  it('sizes the iteration as the stage does and makes no model call', async () => {
    const w = await world();
    const plan = await planInstructions(w.state, w.deps);
    expect(plan).toEqual({ prompts: 7, batches: planBatches(7, 3) });
    expect(w.model.billed).toBe(0);
  });

  it('gives each batch keys of its own, fixed by run, iteration and batch', () => {
    expect(runKeys('run-1', 2).instructionBatch(3)).toEqual({
      candidates: 'runs/run-1/iteration-2/instruction-batches/batch-3-candidates.jsonl',
      raw: 'runs/run-1/iteration-2/instruction-batches/batch-3-raw.jsonl',
      result: 'runs/run-1/iteration-2/instruction-batches/batch-3.json',
    });
  });
});

describe('a batch of instructions', () => {
  it('makes only its own calls, numbered as the iteration numbers them, and stores them under its keys', async () => {
    const w = await world();
    const batch = { batch: 1, from: 3, to: 6 };
    const result = await generateInstructionBatch(w.state, 7, batch, w.deps);

    const keys = runKeys('run-1', 1).instructionBatch(1);
    const candidates = await candidatesOf(w.objects, keys.candidates);
    expect(w.model.billed).toBe(3);
    expect(result).toMatchObject({ batch: 1, candidatesKey: keys.candidates, prompts: 3 });
    expect(result.usage['generate-instructions']?.calls).toBe(3);
    expect(result.candidates).toBe(candidates.length);
    expect(new Set(candidates.map((c) => c.call))).toEqual(new Set([3, 4, 5]));
    const ledger = await w.pool.listCalls(
      'run-1',
      callKeyPrefix({ iteration: 1, scope: INSTRUCTIONS_SCOPE }),
    );
    expect(ledger.map((call) => call.callKey).sort()).toEqual(
      ['prompt-3', 'prompt-4', 'prompt-5'].map((key) => `1#instructions#${key}`),
    );
    expect(JSON.parse((await w.objects.getText(keys.result)) as string)).toEqual(result);
  });

  it('run twice, leaves the same candidates and bills (and records) each call once', async () => {
    const w = await world();
    const batch = { batch: 0, from: 0, to: 3 };
    const first = await generateInstructionBatch(w.state, 7, batch, w.deps);
    const firstCandidates = await w.objects.getText(first.candidatesKey);
    const second = await generateInstructionBatch(w.state, 7, batch, w.deps);

    expect(await w.objects.getText(second.candidatesKey)).toBe(firstCandidates);
    expect(w.model.billed).toBe(3);
    expect(second.usage).toEqual({});
    const ledger = await w.pool.listCalls('run-1', '1#');
    expect(ledger).toHaveLength(3);
  });
});

describe('collect instructions', () => {
  it('joins the batches into the same candidates the stage makes in one invocation, and sums their counts', async () => {
    const alone = await world();
    const whole = await generateInstructions(alone.state, alone.deps);
    const inBatches = await world();
    const { plan, result } = await batched(inBatches);

    expect(plan.batches).toHaveLength(3);
    expect(await candidatesOf(inBatches.objects, result.candidatesKey)).toEqual(
      await candidatesOf(alone.objects, whole.candidatesKey),
    );
    expect(result).toEqual(whole);
    expect(inBatches.model.billed).toBe(alone.model.billed);
    const raw = fromJsonLines<{ callKey: string }>(
      await inBatches.objects.getText(runKeys('run-1', 1).raw('generate-instructions')),
    );
    expect(raw.map((call) => call.callKey)).toEqual(
      Array.from({ length: 7 }, (_, i) => `1#instructions#prompt-${i}`),
    );
  });

  it('evolves the same instructions in batches as in one invocation (method evol)', async () => {
    const alone = await world({ method: 'evol' });
    const whole = await generateInstructions(alone.state, alone.deps);
    const inBatches = await world({ method: 'evol' });
    const { result } = await batched(inBatches);

    const evolved = async (objects: MemoryObjects, key: string) =>
      (await candidatesOf(objects, key)).map(({ instruction, lineage, call }) => ({
        instruction,
        lineage,
        call,
      }));
    expect(await evolved(inBatches.objects, result.candidatesKey)).toEqual(
      await evolved(alone.objects, whole.candidatesKey),
    );
    expect(result.prompts).toBe(7);
  });

  it('fails, for the Retry, when a batch has not stored its result', async () => {
    const w = await world();
    const batches: InstructionBatch[] = planBatches(7, 3);
    await generateInstructionBatch(w.state, 7, batches[0] as InstructionBatch, w.deps);
    await expect(collectInstructions(w.state, batches, w.deps)).rejects.toThrow(IterationIncomplete);
  });

  it('routes each phase of the stage input to its step, and no phase to the stage in one invocation', async () => {
    const w = await world();
    const plan = await runInstructionsStep({ ...w.state, instructions: { phase: 'plan' } }, w.deps);
    expect(plan).toEqual({ prompts: 7, batches: planBatches(7, 3) });
    const whole = await runInstructionsStep(w.state, w.deps);
    expect(whole).toMatchObject({ prompts: 7, candidatesKey: runKeys('run-1', 1).candidates });
  });
});
