/**
 * End to end: `selfinstruct import` into the local stack's data folder, then `export --pool` and a run on
 * the imported pool. The expected instances are worked out by hand from the Self-Instruct code's
 * preparation rules (`prepare_for_finetuning.py`) for `test/fixtures/import/machine_generated_instances.jsonl`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExportFile } from '../../functions/shared/exports/formats.ts';
import type { JsonlRecord } from '../../functions/shared/exports/schemas.ts';
import { exportCommand } from '../../infra/cli/export.ts';
import { ImportFileInvalid } from '../../infra/cli/import/plan.ts';
import { importCommand } from '../../infra/cli/import.ts';
import { openLocalData } from '../../infra/local/data.ts';
import { LocalStack } from '../../infra/local/stack.ts';

const FIXTURES = 'test/fixtures/import';
const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-import-'));
const dataDir = path.join(work, 'data');

/** What the paper's preparation step keeps per task (instruction → [input, output] in reply order). */
const KEPT: Record<string, string[][]> = {
  'Convert the temperature from Celsius to Fahrenheit.': [
    ['25 degrees Celsius', '77 degrees Fahrenheit'],
    ['0 degrees Celsius', '32 degrees Fahrenheit'],
    ['100 degrees Celsius', '212 degrees Fahrenheit'],
  ],
  'Write a short slogan for the given product.': [
    ['Product: a reusable water bottle', 'Drink green, live clean.'],
    ['Product: noise-cancelling headphones', 'Hear only what matters.'],
  ],
  'Give the antonym of the word.': [
    ['hot', 'cold'],
    ['early', 'late'],
  ],
  'Classify the sentiment of the sentence as positive or negative.': [
    ['Sentence: I loved every minute of the show.', 'Positive'],
    ['Sentence: The food was cold and bland.', 'Negative'],
    ['Sentence: What a wonderful surprise!', 'Positive'],
  ],
  'Tell whether 17 is a prime number.': [
    ['', 'Yes'],
    ['', 'No'],
  ],
  'Suggest a name for a pet goldfish.': [['', 'Bubbles']],
  'Translate the English word into Spanish.': [
    ['dog', 'perro'],
    ['house', 'casa'],
  ],
};
/** The task with 7 valid instances, of which the paper keeps 5. */
const PLURAL = 'Write the plural form of the noun.';
const PLURALS = ['cat', 'box', 'child', 'mouse', 'leaf', 'tooth', 'city'];

async function cli(command: typeof importCommand | typeof exportCommand, ...args: string[]): Promise<string> {
  let stdout = '';
  const io = { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true } };
  await command(io).exitOverride().parseAsync(args, { from: 'user' });
  return stdout;
}

/** `export <pool> --pool --format jsonl`: its records, by instruction. */
async function exportPool(pool: string): Promise<Map<string, JsonlRecord[]>> {
  const out = path.join(work, `export-${pool}-${Date.now()}`);
  await cli(
    exportCommand,
    pool,
    '--pool',
    '--format',
    'jsonl',
    '--validation',
    '0',
    '--data-dir',
    dataDir,
    '--out',
    out,
  );
  const records = readdirSync(out)
    .filter((file) => file.endsWith('.jsonl'))
    .flatMap(
      (file) => parseExportFile('jsonl', readFileSync(path.join(out, file), 'utf8'), file) as JsonlRecord[],
    );
  const byInstruction = new Map<string, JsonlRecord[]>();
  for (const record of records)
    byInstruction.set(record.instruction, [...(byInstruction.get(record.instruction) ?? []), record]);
  return byInstruction;
}

beforeAll(async () => {
  // A data folder with the local stack's bucket and table, as `npm start` leaves one.
  await (await LocalStack.start({ dataDir, fresh: true })).close();
  await cli(
    importCommand,
    'imported',
    `${FIXTURES}/machine_generated_instances.jsonl`,
    `${FIXTURES}/is_clf_or_not_davinci_template_1.jsonl`,
    '--data-dir',
    dataDir,
  );
}, 180_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('selfinstruct import', () => {
  it('imports Self-Instruct instances: export --pool yields exactly what the paper keeps for every task', async () => {
    const exported = await exportPool('imported');
    const pairs = (instruction: string) =>
      (exported.get(instruction) ?? []).map((record) => [record.input, record.output]);
    expect([...exported.keys()].sort()).toEqual([...Object.keys(KEPT), PLURAL].sort());
    for (const [instruction, kept] of Object.entries(KEPT)) {
      expect(pairs(instruction).sort(), instruction).toEqual([...kept].sort());
    }
    const plurals = pairs(PLURAL);
    expect(plurals).toHaveLength(5);
    expect(new Set(plurals.map(([input]) => input)).size).toBe(5);
    for (const [input] of plurals) expect(PLURALS).toContain(input);
    const records = [...exported.values()].flat();
    expect(
      records.every((record) => record.run_id?.startsWith('import-') && record.source === 'machine'),
    ).toBe(true);
    expect(exported.get('Tell whether 17 is a prime number.')?.[0]?.is_classification).toBe(true);
  });

  it('stops at a bad file with one error naming file, line and field, and writes nothing', async () => {
    const bad = path.join(work, 'batch.jsonl');
    const lines = readFileSync(`${FIXTURES}/machine_generated_instances.jsonl`, 'utf8').trim().split('\n');
    const broken = JSON.parse(lines[2] as string);
    broken.raw_instances = 42;
    writeFileSync(bad, `${[lines[0], lines[1], JSON.stringify(broken)].join('\n')}\n`);
    const failure = cli(
      importCommand,
      'fresh',
      bad,
      `${FIXTURES}/is_clf_or_not_davinci_template_1.jsonl`,
      '--data-dir',
      dataDir,
    );
    await expect(failure).rejects.toBeInstanceOf(ImportFileInvalid);
    await expect(failure).rejects.toThrow(
      `Import is invalid (1 problem):\n  ${bad}:3: raw_instances: Invalid input: expected string, received number`,
    );
    const data = await openLocalData(dataDir, 'test', 'no data');
    try {
      expect(await data.pool.getMeta('fresh')).toBeUndefined();
      expect(await data.objects.list('pools/fresh/')).toEqual([]);
    } finally {
      await data.close();
    }
  });

  it('with --gate rejects a near-copy of a pool instruction and adds the rest', async () => {
    const copies = path.join(work, 'more.json');
    writeFileSync(
      copies,
      JSON.stringify([
        { instruction: 'Give the antonym of this word.', input: 'big', output: 'small' },
        { instruction: 'Name three birds that cannot fly.', input: '', output: 'Emu, kiwi, penguin' },
      ]),
    );
    const printed = await cli(importCommand, 'imported', copies, '--gate', '--data-dir', dataDir);
    expect(printed).toContain(
      '2 records read as 2 tasks: 1 added with instances, 0 kept out of the dataset, 0 duplicates, 1 rejected by ROUGE-L',
    );
    const exported = await exportPool('imported');
    expect(exported.has('Give the antonym of this word.')).toBe(false);
    expect(exported.get('Name three birds that cannot fly.')?.map((record) => record.output)).toEqual([
      'Emu, kiwi, penguin',
    ]);
  });

  it('leaves a pool a later run grows: the export holds the imported tasks and the run’s', async () => {
    const stack = await LocalStack.start({ dataDir });
    let runId: string;
    try {
      const result = await stack.execute({
        pool: 'imported',
        target: 4,
        maxIterations: 1,
        promptsPerIteration: 2,
        seed: 'import-e2e',
      });
      expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
      runId = (result.output as { runId: string }).runId;
    } finally {
      await stack.close();
    }
    const exported = await exportPool('imported');
    const records = [...exported.values()].flat();
    expect(records.some((record) => record.run_id === runId)).toBe(true);
    expect(records.every((record) => record.run_id === runId || record.run_id?.startsWith('import-'))).toBe(
      true,
    );
    for (const instruction of Object.keys(KEPT)) expect(exported.has(instruction), instruction).toBe(true);
  });
});
