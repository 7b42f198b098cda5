/**
 * Every stored file round-trips through its one schema (`records.ts`): written by the real writer (the
 * stage cores on in-memory ports with the offline model), parsed with the schema, equal to what was
 * written, field for field: no field the schema drops, renames or defaults.
 */
import { describe, expect, it } from 'vitest';
import { exportDataset } from '../../functions/export/core.ts';
import { filterAndDeduplicate } from '../../functions/filter/core.ts';
import { generateInstances } from '../../functions/generate-instances/core.ts';
import { generateInstructions } from '../../functions/generate-instructions/core.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { saveIteration } from '../../functions/save-iteration/core.ts';
import { DecisionWriter, decide, screen } from '../../functions/shared/engine/decisions.ts';
import { gate, RougeIndex } from '../../functions/shared/engine/gate.ts';
import { fromJsonLines, toJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys, runKeys } from '../../functions/shared/keys.ts';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import { GateRecord, IterationRecord, RunSummary, TaskLine } from '../../functions/shared/records.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from './fakes.ts';

/** A run of one iteration through every stage, then the export. */
async function oneIterationExported() {
  const objects = new MemoryObjects();
  const pool = new MemoryPool();
  await objects.put('seeds/demo/seeds.jsonl', toJsonLines(SEED_TASKS));
  const deps = { objects, pool, model: new OfflineModel({ seed: 'records' }) };
  const input = { seedKey: 'seeds/demo/seeds.jsonl', promptsPerIteration: 4, target: 1000, maxIterations: 1 };
  const state = await prepareRun({ runId: 'run-1', input }, deps);
  const generated = await generateInstructions(state, deps);
  const gated = await filterAndDeduplicate({ ...state, candidatesKey: generated.candidatesKey }, deps);
  const instances = [];
  for (const chunk of gated.chunks) instances.push(await generateInstances({ ...state, chunk }, deps));
  const saved = await saveIteration({ ...state, generated, gated, instances }, deps);
  await exportDataset(saved, deps);
  return { objects, pool };
}

/** Each JSON line of an object, as written. */
async function lines(objects: MemoryObjects, key: string): Promise<unknown[]> {
  return fromJsonLines(await objects.getText(key));
}

describe('the stored files, each through its schema', async () => {
  const { objects, pool } = await oneIterationExported();

  it('gate.jsonl: every decision, filtered, gated and accepted', async () => {
    const written = await lines(objects, runKeys('run-1', 1).gate);
    const parsed = written.map((line) => GateRecord.parse(line));
    expect(parsed).toEqual(written);
    // The file holds each kind of line, so each shape was checked.
    expect(parsed.some((d) => d.status === 'accepted' && d.id !== undefined)).toBe(true);
    expect(parsed.some((d) => d.reason === 'rouge' && d.most_similar !== null)).toBe(true);
    expect(parsed.some((d) => d.status === 'rejected' && d.max_similarity === null)).toBe(true);
  });

  it('tasks.jsonl: every exported task', async () => {
    const written = await lines(objects, exportKeys('run-1').tasks);
    expect(written.length).toBeGreaterThan(0);
    expect(written.map((line) => TaskLine.parse(line))).toEqual(written);
  });

  it('summary.json', async () => {
    const written = JSON.parse((await objects.getText(exportKeys('run-1').summary)) ?? 'null');
    expect(RunSummary.parse(written)).toEqual(written);
  });

  it("the run record's iteration stats", async () => {
    const written = (await pool.getIterations('run-1'))['1'];
    expect(written).toBeDefined();
    expect(IterationRecord.parse(written)).toEqual(written);
  });
});

describe('the decision writer', () => {
  it('writes the gate result as the dedup command does (no `raw`), most similar first, even for "42"', async () => {
    const index = RougeIndex.from(['42', 'Write a short poem about the sea.']);
    const screened = screen('default', ['Write a short poem about the sea!', '??']);
    const survivors = screened.flatMap((c) => (c.filtered === null ? [c.instruction] : []));
    const decisions = [];
    for await (const batch of decide(screened, [gate(index, survivors)])) decisions.push(...batch);

    const text = new DecisionWriter({ raw: false }).lines(decisions);

    const [gated, filtered] = text.split('\n');
    expect(gated).toMatch(
      /^\{"instruction":"Write a short poem about the sea!","status":"rejected","reason":"rouge","max_similarity":1,"most_similar":\{"Write a short poem about the sea.":1,"42":0\},"avg_similarity_score":0\.5\}$/,
    );
    expect(filtered).toBe(
      '{"instruction":"??","status":"rejected","reason":"too-short","max_similarity":null,"most_similar":null,"avg_similarity_score":null}',
    );
    const records = fromJsonLines(text).map((line) => GateRecord.parse(line));
    expect(records.map((r) => r.reason)).toEqual(['rouge', 'too-short']);
  });
});
