/**
 * `import`: files recognised by content, Self-Instruct instances prepared exactly as the paper's
 * `prepare_for_finetuning.py` (the expectations below are worked out by hand from its rules, for the
 * fixtures in `test/fixtures/import/`), and the tasks written into a pool as the stages write theirs.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PoolBusy } from '../../functions/shared/errors.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { poolKeys } from '../../functions/shared/keys.ts';
import { taskId } from '../../functions/shared/pool-ids.ts';
import { loadIndex, readManifest } from '../../functions/shared/pool-index.ts';
import type { TaskLine } from '../../functions/shared/records.ts';
import { applyImport } from '../../infra/cli/import/apply.ts';
import { prepareInstances } from '../../infra/cli/import/paper.ts';
import {
  ImportFileInvalid,
  type ImportInput,
  type PlannedTask,
  planImport,
} from '../../infra/cli/import/plan.ts';
import { MemoryObjects, MemoryPool } from './fakes.ts';

const FIXTURES = 'test/fixtures/import';
const fixture = (name: string, as = name): ImportInput => ({
  file: as,
  bytes: readFileSync(`${FIXTURES}/${name}`),
});
const text = (file: string, content: string): ImportInput => ({ file, bytes: Buffer.from(content) });
const INSTANCES = fixture('machine_generated_instances.jsonl');
const CLASSIFICATION = fixture('is_clf_or_not_davinci_template_1.jsonl');
const byInstruction = (tasks: readonly PlannedTask[]) =>
  new Map(tasks.map((task) => [task.instruction, task]));
const pairs = (task: PlannedTask | undefined) => task?.instances.map(({ input, output }) => [input, output]);

/** Every valid instance of "Write the plural form of the noun." (7: the paper keeps 5 of them). */
const PLURALS = [
  ['cat', 'cats'],
  ['box', 'boxes'],
  ['child', 'children'],
  ['mouse', 'mice'],
  ['leaf', 'leaves'],
  ['tooth', 'teeth'],
  ['city', 'cities'],
];

describe('import: Self-Instruct instances, as the paper prepares them', () => {
  const plan = planImport([INSTANCES, CLASSIFICATION], { seed: '123' });
  const tasks = byInstruction(plan.tasks);

  it('splits a generation reply on "Example N", each into input and output', () => {
    expect(pairs(tasks.get('Convert the temperature from Celsius to Fahrenheit.'))).toEqual([
      ['25 degrees Celsius', '77 degrees Fahrenheit'],
      ['0 degrees Celsius', '32 degrees Fahrenheit'],
      ['100 degrees Celsius', '212 degrees Fahrenheit'],
    ]);
  });

  it('drops the last instance of a reply cut by the token limit (finish_reason "length")', () => {
    const task = tasks.get('Write a short slogan for the given product.');
    expect(pairs(task)).toEqual([
      ['Product: a reusable water bottle', 'Drink green, live clean.'],
      ['Product: noise-cancelling headphones', 'Hear only what matters.'],
    ]);
    expect(task?.outcome).toEqual({ 'instance-truncated': 1 });
  });

  it('drops invalid instances (input = output, empty output, ending with ":") and exact duplicates', () => {
    const task = tasks.get('Give the antonym of the word.');
    expect(pairs(task)).toEqual([
      ['hot', 'cold'],
      ['early', 'late'],
    ]);
    expect(task?.outcome).toEqual({
      'instance-input-equals-output': 1,
      'instance-empty-output': 1,
      'instance-ends-with-colon': 1,
      'instance-duplicate': 1,
    });
  });

  it('drops the whole task when one input has two outputs', () => {
    const task = tasks.get('Name the capital city of the country.');
    expect(task?.instances).toEqual([]);
    expect(task?.rejectReason).toBe('conflicting-outputs');
  });

  it('keeps 5 of more valid instances, a seeded draw in reply order', () => {
    const kept = pairs(tasks.get('Write the plural form of the noun.')) ?? [];
    expect(kept).toHaveLength(5);
    const positions = kept.map((pair) => PLURALS.findIndex((p) => p.join() === pair.join()));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(tasks.get('Write the plural form of the noun.')?.outcome).toEqual({ 'instance-over-limit': 2 });
    // Another seed draws (for this fixture) another 5.
    const other = byInstruction(planImport([INSTANCES, CLASSIFICATION], { seed: 'another' }).tasks);
    expect(pairs(other.get('Write the plural form of the noun.'))).not.toEqual(kept);
  });

  it('reads a classification reply output-first: the label line, then the input', () => {
    expect(pairs(tasks.get('Classify the sentiment of the sentence as positive or negative.'))).toEqual([
      ['Sentence: I loved every minute of the show.', 'Positive'],
      ['Sentence: The food was cold and bland.', 'Negative'],
      ['Sentence: What a wonderful surprise!', 'Positive'],
    ]);
    const labels = tasks.get('Tell whether 17 is a prime number.');
    expect(pairs(labels)).toEqual([
      ['', 'Yes'],
      ['', 'No'],
    ]);
    expect(labels?.isClassification).toBe(true);
  });

  it('reads a reply without "Example" as one pair, keeps the first output of numbered pairs', () => {
    expect(pairs(tasks.get('Suggest a name for a pet goldfish.'))).toEqual([['', 'Bubbles']]);
    expect(pairs(tasks.get('Translate the English word into Spanish.'))).toEqual([
      ['dog', 'perro'],
      ['house', 'casa'],
    ]);
  });

  it('leaves a task without instances when the reply has no marker, or the request failed', () => {
    for (const instruction of ['Tell me a fun fact about octopuses.', 'Describe the smell of rain.']) {
      expect(tasks.get(instruction)?.rejectReason, instruction).toBe('no-valid-instances');
      expect(tasks.get(instruction)?.outcome, instruction).toEqual({ 'instances-unparseable': 1 });
    }
  });

  it("uses Python's whitespace and digits, not JavaScript's", () => {
    // U+0085 and U+001F are whitespace to Python's strip() and \s, U+FEFF is not; "١" is a digit to \d.
    const prepared = prepareInstances(
      'Example 1\nInput\u0085١: a\u001f\nOutput: b\u0085\n\nExample 2\nOutput: \ufeffc',
      {
        isClassification: false,
        finishReason: 'stop',
        seed: 's',
      },
    );
    expect(prepared.kept).toEqual([
      { input: 'a', output: 'b' },
      { input: '', output: '\ufeffc' },
    ]);
  });
});

describe('import: files recognised by content', () => {
  it('recognises each format whatever the file is called', () => {
    const plan = planImport(
      [
        fixture('machine_generated_instances.jsonl', 'a.txt'),
        fixture('is_clf_or_not_davinci_template_1.jsonl', 'b.txt'),
        fixture('machine_generated_instructions.jsonl', 'c.txt'),
        fixture('alpaca_data.json', 'd.txt'),
        fixture('tasks.jsonl', 'e.txt'),
      ],
      { seed: '123' },
    );
    expect(plan.files.map(({ file, format, records }) => [file, format, records])).toEqual([
      ['a.txt', 'instances', 11],
      ['b.txt', 'classification', 12],
      ['c.txt', 'instructions', 3],
      ['d.txt', 'alpaca', 4],
      ['e.txt', 'tasks', 2],
    ]);
  });

  it('merges an instructions line with the instances of its instruction; alone, it has no instances', () => {
    const plan = planImport([fixture('machine_generated_instructions.jsonl'), INSTANCES, CLASSIFICATION], {
      seed: '123',
    });
    const tasks = byInstruction(plan.tasks);
    expect(plan.tasks).toHaveLength(12);
    expect(plan.counts).toEqual({ read: 14 });
    const merged = tasks.get('Convert the temperature from Celsius to Fahrenheit.');
    expect(merged?.instances).toHaveLength(3);
    expect(merged?.from.file).toBe('machine_generated_instructions.jsonl');
    const alone = tasks.get('Plan a three-day trip to a city you have never visited.');
    expect(alone?.rejectReason).toBe('no-instances');
    expect(alone?.mostSimilar).toEqual({ instruction: 'Write a haiku about autumn.', score: 0.4 });
  });

  it('makes Alpaca records of one instruction one task; reads tasks.jsonl with its verdict', () => {
    const plan = planImport([fixture('alpaca_data.json'), fixture('tasks.jsonl')], { seed: '1' });
    const tasks = byInstruction(plan.tasks);
    expect(pairs(tasks.get('Translate the sentence into French.'))).toEqual([
      ['Good morning.', 'Bonjour.'],
      ['Thank you.', 'Merci.'],
    ]);
    expect(plan.tasks).toHaveLength(5);
    const sorted = tasks.get('Sort the list of numbers in ascending order.');
    expect(sorted?.quality).toEqual({
      score: 5,
      instructionValid: true,
      inputAppropriate: true,
      outputCorrect: true,
      reason: 'Clear task with correct outputs.',
    });
    expect(sorted?.id).toBe(taskId('Sort the list of numbers in ascending order.'));
    expect(tasks.get('Decide whether the email is spam.')?.isClassification).toBe(true);
  });

  it('reports every problem of every file in one error, with file, line and field', () => {
    const bad = text(
      'bad.jsonl',
      `${JSON.stringify({ instruction: 'Add the numbers.', raw_instances: 'Output: 3', instance_metadata: { response: null } })}\n` +
        `${JSON.stringify({ instruction: 'Sum them.', instance_metadata: { response: null } })}\n`,
    );
    const alpaca = text(
      'bad.json',
      '[\n  {"instruction": "Say hi.", "input": "", "output": "Hi"},\n  {\n    "instruction": "Say bye.",\n    "input": ""\n  }\n]',
    );
    const error = (() => {
      try {
        planImport([bad, CLASSIFICATION, alpaca, text('odd.jsonl', '{"question": "why?"}\n')], { seed: '1' });
      } catch (caught) {
        return caught as ImportFileInvalid;
      }
    })();
    expect(error).toBeInstanceOf(ImportFileInvalid);
    expect(error?.problems.map(({ file, line, field }) => [file, line, field])).toEqual([
      ['bad.jsonl', 2, 'raw_instances'],
      ['bad.json', 3, 'output'],
      ['odd.jsonl', 1, undefined],
      ['bad.jsonl', 1, 'instruction'],
    ]);
    expect(error?.message).toContain(
      'bad.jsonl:2: raw_instances: Invalid input: expected string, received undefined',
    );
  });

  it('asks for the classification file of Self-Instruct instances', () => {
    expect(() => planImport([INSTANCES], { seed: '1' })).toThrow(/is_clf_or_not_\*\.jsonl/);
  });
});

describe('import: into a pool', () => {
  const plan = planImport([INSTANCES, CLASSIFICATION], { seed: '123' });

  it('stages, commits and snapshots the tasks as an iteration of the import, with its index', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    const result = await applyImport(
      plan,
      { pool: 'p', importId: 'import-1', gate: false },
      { objects, pool },
    );

    expect(result.counts).toMatchObject({ read: 11, complete: 8, rejected: 3, 'no-valid-instances': 2 });
    const meta = await pool.getMeta('p');
    expect(meta).toMatchObject({ taskCount: 8, seedCount: 0, commit: { runId: 'import-1', iteration: 1 } });
    expect(meta?.lease).toBeUndefined();
    const staged = [];
    for await (const task of pool.listStaged('p')) staged.push(task);
    expect(staged).toEqual([]);
    const index = await loadIndex(objects, meta?.indexKey as string);
    expect(index.instructions).toEqual(plan.tasks.map((task) => task.instruction));
    // A new segment of the pool's index, and the demonstrations sample with the tasks.
    expect(await readManifest(objects, meta?.indexKey as string)).toMatchObject({
      segments: [{ key: poolKeys('p').segment('import-1', 1), size: plan.tasks.length }],
      demonstrations: poolKeys('p').demonstrations('import-1', 1),
    });
    const snapshot = fromJsonLines<TaskLine>(await objects.getText(poolKeys('p').snapshot('import-1', 1)));
    expect(snapshot.map((task) => task.instruction)).toEqual(
      plan.tasks.filter((task) => task.rejectReason === undefined).map((task) => task.instruction),
    );
    expect(snapshot.every((task) => task.run_id === 'import-1' && task.source === 'machine')).toBe(true);
    expect((await pool.getRun('import-1'))?.status).toBe('SUCCEEDED');
  });

  it('adds seeds only from --seeds, and counts what the pool has as duplicates the second time', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    const seeds = text(
      'seeds.jsonl',
      `${JSON.stringify({ id: 's1', name: 's', instruction: 'Add two numbers.', instances: [{ input: '1, 2', output: '3' }], is_classification: false })}\n`,
    );
    const withSeeds = planImport([INSTANCES, CLASSIFICATION], { seed: '123', seeds });
    await applyImport(withSeeds, { pool: 'p', importId: 'import-1', gate: false }, { objects, pool });
    expect(await pool.getMeta('p')).toMatchObject({ taskCount: 9, seedCount: 1 });
    expect(await objects.getText(poolKeys('p').seeds)).toContain('Add two numbers.');

    const again = await applyImport(
      plan,
      { pool: 'p', importId: 'import-2', gate: false },
      { objects, pool },
    );
    expect(again.counts).toMatchObject({ read: 11, duplicate: 11 });
    expect(await pool.getMeta('p')).toMatchObject({ taskCount: 9 });
  });

  it('with --gate, rejects a near-copy of a pool instruction and of one accepted before it', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    await applyImport(plan, { pool: 'p', importId: 'import-1', gate: false }, { objects, pool });
    const copies = planImport(
      [
        text(
          'copies.json',
          JSON.stringify([
            {
              instruction: 'Convert the temperature from Celsius into Fahrenheit.',
              input: '5',
              output: '41',
            },
            { instruction: 'Name three birds that cannot fly.', input: '', output: 'Emu, kiwi, penguin' },
            { instruction: 'Name three birds that can not fly.', input: '', output: 'Ostrich, emu, kiwi' },
          ]),
        ),
      ],
      { seed: '1' },
    );
    const result = await applyImport(
      copies,
      { pool: 'p', importId: 'import-2', gate: true },
      { objects, pool },
    );
    expect(result.counts).toMatchObject({ read: 3, rouge: 2, complete: 1 });
    const decisions = fromJsonLines<{ status: string; reason: string | null }>(
      await objects.getText(result.decisionsKey as string),
    );
    expect(decisions.map((d) => d.reason)).toEqual(['rouge', null, 'rouge']);
    const [added] = await pool.getTasks('p', [taskId('Name three birds that cannot fly.')]);
    expect(added?.maxSimilarity).toBeGreaterThan(0);
    expect(added?.maxSimilarity).toBeLessThanOrEqual(0.7);
  });

  it('writes nothing while a live run holds the pool', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    await pool.putRun({ runId: 'run-live', pool: 'p', status: 'RUNNING', startedAt: '' });
    await pool.takeLease('p', 'run-live', new Date(Date.now() + 60_000), new Date());
    const writes = pool.writes.length;
    await expect(
      applyImport(plan, { pool: 'p', importId: 'import-1', gate: false }, { objects, pool }),
    ).rejects.toBeInstanceOf(PoolBusy);
    expect(pool.writes.length).toBe(writes);
    expect(await objects.list('')).toEqual([]);
  });
});
