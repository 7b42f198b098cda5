/**
 * The export formats, task selection, the train/validation split, the sources in the bucket and the
 * dataset card, on an in-memory bucket; `exportDataset` (the command's function) on a temporary folder.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseRunInput } from '../../functions/prepare/core.ts';
import { VectorIndex } from '../../functions/shared/engine/vector-index.ts';
import { InputFileInvalid, NotFound } from '../../functions/shared/errors.ts';
import {
  convertRecord,
  FORMATS,
  type FormatRecord,
  parseExportFile,
  renderRecordChunks,
  renderRecords,
  toBedrockRecord,
  toMessagesRecord,
  toRecords,
} from '../../functions/shared/exports/formats.ts';
import {
  AlpacaRecord,
  BedrockRecord,
  EXPORT_FORMATS,
  type ExportFormat,
  ExportOptionsInvalid,
  JsonlRecord,
  MessagesRecord,
  NothingToExport,
  RECORD_SCHEMAS,
} from '../../functions/shared/exports/schemas.ts';
import { METHODS, RESPONSE_STYLES } from '../../functions/shared/methods.ts';
import type { Embedder } from '../../functions/shared/models/embeddings.ts';
import { RunSummary, TaskLine } from '../../functions/shared/records.ts';
import { Method } from '../../functions/shared/schemas.ts';
import { type BuiltExport, buildExport } from '../../infra/cli/export/build.ts';
import { CARD_MARKER, code, fence, sizeCategory } from '../../infra/cli/export/card.ts';
import {
  bySelectionOrder,
  pickDiverse,
  selectTasks,
  splitTasks,
  validationSize,
} from '../../infra/cli/export/select.ts';
import { readTasks, type TaskSource } from '../../infra/cli/export/sources.ts';
import { type SelectionVectors, selectionModel, selectionVectors } from '../../infra/cli/export/vectors.ts';
import { exportCommand, exportDataset } from '../../infra/cli/export.ts';
import { MemoryObjects, runSummary } from './fakes.ts';

/** A machine task line as the export stage and the snapshots write it. */
function task(n: number, overrides: Partial<TaskLine> = {}): TaskLine {
  return {
    id: `task-${String(n).padStart(3, '0')}`,
    name: `task-${n}`,
    instruction: `Write task number ${n} in a few words.`,
    instances: Array.from({ length: 1 + (n % 3) }, (_, i) => ({
      input: i === 0 ? '' : `input ${n}.${i}`,
      output: `output ${n}.${i}`,
    })),
    is_classification: n % 5 === 0,
    source: 'machine',
    run_id: 'run-a',
    iteration: 1 + (n % 2),
    most_similar_instruction: 'Write a poem.',
    most_similar_score: 0.25,
    avg_similarity_score: 0.05,
    ...overrides,
  };
}

const seedLine = (n: number) => ({
  id: `seed_task_${n}`,
  name: `seed-${n}`,
  instruction: `Seed instruction ${n}.`,
  instances: [{ input: '', output: `seed output ${n}` }],
  is_classification: false,
});

const lines = (values: readonly unknown[]) => values.map((value) => `${JSON.stringify(value)}\n`).join('');

/** A bucket with pool `p`: 3 seeds, run `run-a` exported with tasks 0–11. */
async function bucket(tasks = Array.from({ length: 12 }, (_, n) => task(n))) {
  const objects = new MemoryObjects();
  await objects.put('pools/p/seeds.jsonl', lines([0, 1, 2].map(seedLine)));
  await objects.put('seeds/p/my-seeds.jsonl', lines([0, 1, 2].map(seedLine)));
  await objects.put('exports/run-a/tasks.jsonl', lines(tasks));
  await objects.put('exports/run-a/summary.json', JSON.stringify(runSummary()));
  for (const iteration of [1, 2]) {
    const of = tasks.filter((t) => t.iteration === iteration);
    await objects.put(`pools/p/snapshots/run-a/iteration-${iteration}.jsonl`, lines(of));
  }
  return objects;
}

/** A source with `n` machine tasks, for the pure tests. */
function source(tasks: TaskLine[], overrides: Partial<TaskSource> = {}): TaskSource {
  return {
    kind: 'run',
    name: 'run-a',
    pool: 'p',
    tasks,
    seeds: [0, 1, 2].map((n) => ({ ...seedLine(n), source: 'seed' as const })),
    seedKey: 'pools/p/seeds.jsonl',
    seedUploads: [],
    runs: [{ runId: 'run-a', iterations: 2, summary: runSummary() }],
    ...overrides,
  };
}

const many = (n: number) => Array.from({ length: n }, (_, i) => task(i));

/**
 * A file as the command wrote it before it streamed: every record converted, then the whole file
 * stringified at once (`JSON.stringify(records, null, 2)` for Alpaca's array). The reference for bytes.
 */
function wholeFile(format: ExportFormat, records: readonly JsonlRecord[], system?: string): string {
  const converted = records.map((record) => convertRecord(format, record, { system }));
  return FORMATS[format].ext === 'json'
    ? `${JSON.stringify(converted, null, 2)}\n`
    : converted.map((value) => `${JSON.stringify(value)}\n`).join('');
}

/** Tasks whose text is long (files of many chunks), in other scripts, with quotes, line breaks and tabs. */
const awkward = (n: number) =>
  many(n).map((t, i) =>
    task(i, {
      instances: t.instances.map((_instance, j) => ({
        input: j === 0 ? '' : `第${i}行\n"quoted" \\ back\tslash ${'x'.repeat(i % 7)}`,
        output: `${'Ünïcode 🙂 output '.repeat(20)}${i}.${j}\n  indented:\n- item`,
      })),
    }),
  );

/** The data files of one format and split, parsed back with the format's schema. */
function parsed<F extends ExportFormat>(
  built: BuiltExport,
  format: F,
  split: 'train' | 'validation',
): FormatRecord[F][] {
  const file = built.files.find((f) => f.data?.format === format && f.data.split === split);
  return file ? parseExportFile(format, file.content, file.path) : [];
}

describe('the formats', () => {
  const record = toRecords(task(4))[1] as JsonlRecord;

  it('makes one jsonl record per instance with the task’s provenance', () => {
    expect(toRecords(task(4))).toHaveLength(2);
    expect(record).toEqual({
      instruction: 'Write task number 4 in a few words.',
      input: 'input 4.1',
      output: 'output 4.1',
      task_id: 'task-004',
      is_classification: false,
      source: 'machine',
      run_id: 'run-a',
      iteration: 1,
      most_similar_instruction: 'Write a poem.',
      most_similar_score: 0.25,
      quality_score: undefined,
    });
  });

  it('puts the input after a blank line in the user turn, only when there is one', () => {
    expect(toMessagesRecord(record)).toEqual({
      messages: [
        { role: 'user', content: 'Write task number 4 in a few words.\n\ninput 4.1' },
        { role: 'assistant', content: 'output 4.1' },
      ],
    });
    const noInput = { ...record, input: '  ' };
    expect(toMessagesRecord(noInput, { system: 'Be brief.' })).toEqual({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Write task number 4 in a few words.' },
        { role: 'assistant', content: 'output 4.1' },
      ],
    });
  });

  it('writes Bedrock’s conversation schema, with a system block only when asked', () => {
    expect(toBedrockRecord(record)).toEqual({
      schemaVersion: 'bedrock-conversation-2024',
      messages: [
        { role: 'user', content: [{ text: 'Write task number 4 in a few words.\n\ninput 4.1' }] },
        { role: 'assistant', content: [{ text: 'output 4.1' }] },
      ],
    });
    expect(toBedrockRecord(record, { system: 'Be brief.' }).system).toEqual([{ text: 'Be brief.' }]);
  });

  it('writes JSON Lines, or one JSON array for Alpaca, that parse back with each schema', () => {
    const records = many(5).flatMap(toRecords);
    for (const format of EXPORT_FORMATS) {
      const text = renderRecords(format, records, { system: 'S' });
      const back = parseExportFile(format, text, `x.${FORMATS[format].ext}`);
      expect(back, format).toHaveLength(records.length);
      expect(text.startsWith('['), format).toBe(format === 'alpaca');
    }
    expect(parseExportFile('alpaca', renderRecords('alpaca', records), 'a.json')[0]).toEqual({
      instruction: 'Write task number 0 in a few words.',
      input: '',
      output: 'output 0.0',
    });
  });

  it('rejects records of another shape, naming the line', () => {
    const bad = [
      JSON.stringify({ messages: [{ role: 'bot', content: 'hi' }] }),
      JSON.stringify({
        schemaVersion: 'bedrock-conversation-2024',
        messages: [{ role: 'user', content: 'x' }],
      }),
    ];
    expect(() => parseExportFile('messages', `${bad[0]}\n`, 'm.jsonl')).toThrow(/m\.jsonl:1/);
    expect(() => parseExportFile('bedrock', `${bad[1]}\n`, 'b.jsonl')).toThrow(InputFileInvalid);
    expect(() =>
      parseExportFile('alpaca', lines([{ instruction: 'a', input: '', output: 'b' }]), 'a'),
    ).toThrow(/expected a JSON array/);
    expect(MessagesRecord.safeParse({ messages: [{ role: 'user', content: 'a' }] }).success).toBe(false);
    expect(AlpacaRecord.safeParse({ instruction: 'a', input: '', output: 'b', extra: 1 }).success).toBe(
      false,
    );
    expect(BedrockRecord.safeParse({ ...toBedrockRecord(record), schemaVersion: 'v2' }).success).toBe(false);
  });

  it('reads the run summary the export stage writes', () => {
    const written: RunSummary = {
      runId: 'run-a',
      pool: 'p',
      profile: 'default',
      model: 'offline',
      stopReason: 'target reached',
      config: parseRunInput({ rougeThreshold: 0.65, seedKey: 'seeds/p/s.jsonl' }, 'run-a'),
      iterations: 2,
      added: 5,
      poolSize: 200,
      exportedTasks: 5,
      exportedRecords: 9,
      counts: { generated: 10 },
      usage: { calls: 3, inputTokens: 10, outputTokens: 20 },
      cost: {
        modelUsd: 0,
        awsUsd: 0.001,
        totalUsd: 0.001,
        perTaskUsd: null,
        per1000TasksUsd: null,
        modelUnpriced: false,
      },
      exportPrefix: 'exports/run-a/',
      files: { dataset: 'd', alpaca: 'a', tasks: 't', summary: 's' },
    };
    const read = RunSummary.parse(JSON.parse(JSON.stringify(written)));
    expect(read).toMatchObject({ runId: 'run-a', pool: 'p', model: 'offline', iterations: 2 });
    expect(read.cost?.perTaskUsd).toBeNull();
    expect(Object.keys(RECORD_SCHEMAS)).toEqual([...EXPORT_FORMATS]);
  });

  it('declare the provenance a record shares with its task line once: the jsonl record takes it from TaskLine', () => {
    const own = ['instruction', 'input', 'output', 'task_id', 'is_classification', 'source'];
    const shared = Object.keys(JsonlRecord.shape).filter((field) => !own.includes(field));
    expect(shared).toContain('lineage');
    expect(shared).toContain('source_span');
    expect(shared).toContain('quality_score');
    for (const field of shared) {
      expect(JsonlRecord.shape[field as keyof typeof JsonlRecord.shape], field).toBe(
        TaskLine.shape[field as keyof typeof TaskLine.shape],
      );
    }
    // Every field of a record is a field of the card, in the same order.
    expect(FORMATS.jsonl.fields.map(([name]) => name)).toEqual(Object.keys(JsonlRecord.shape));
  });
});

describe('explained records', () => {
  const SYSTEM = 'You are an AI assistant. Think step-by-step and justify your steps.';
  const explained = (n: number) => task(n, { response_style: 'explained', system_message: SYSTEM });
  const record = toRecords(explained(4))[1] as JsonlRecord;

  it('carry the response style and system message of their task in jsonl', () => {
    expect(record).toMatchObject({
      task_id: 'task-004',
      response_style: 'explained',
      system_message: SYSTEM,
    });
    expect(JsonlRecord.parse(record)).toEqual(record);
  });

  it('put their own system message first in messages and bedrock, over the export’s', () => {
    const user = 'Write task number 4 in a few words.\n\ninput 4.1';
    for (const options of [{}, { system: 'Be brief.' }]) {
      expect(toMessagesRecord(record, options)).toEqual({
        messages: [
          { role: 'system', content: SYSTEM },
          { role: 'user', content: user },
          { role: 'assistant', content: 'output 4.1' },
        ],
      });
      expect(toBedrockRecord(record, options)).toEqual({
        schemaVersion: 'bedrock-conversation-2024',
        system: [{ text: SYSTEM }],
        messages: [
          { role: 'user', content: [{ text: user }] },
          { role: 'assistant', content: [{ text: 'output 4.1' }] },
        ],
      });
    }
  });

  it('leave the export’s system message to the direct records of a mixed export', () => {
    const built = buildExport(source([explained(0), task(1)]), { validation: 0, system: 'Be brief.' });
    // The formats hold the same records in the same order.
    const byTask = new Map(
      parsed(built, 'jsonl', 'train').map((r, i) => [
        r.task_id,
        parsed(built, 'bedrock', 'train')[i]?.system,
      ]),
    );
    expect(byTask.get('task-000')).toEqual([{ text: SYSTEM }]);
    expect(byTask.get('task-001')).toEqual([{ text: 'Be brief.' }]);
  });

  it('are named in the card: the style, the teacher and each system message with its task count', () => {
    const summary = runSummary();
    const config = { ...summary.config, responseStyle: 'explained' as const, teacherModel: 'openai:gpt-4o' };
    const built = buildExport(
      source([explained(0), explained(1), task(2)], {
        runs: [{ runId: 'run-a', iterations: 2, summary: { ...summary, config } }],
      }),
      { validation: 0 },
    );
    const card = built.files.find((file) => file.path === 'README.md')?.content ?? '';
    expect(card).toContain(
      '| responses | direct (1 task); explained by `openai:gpt-4o` (2 tasks; see Explanation traces) |',
    );
    expect(card).toContain(`## Explanation traces`);
    expect(card).toContain(`| ${SYSTEM} | 2 |`);
    const style = RESPONSE_STYLES.explained;
    expect(card).toContain(
      `For 2 of these tasks, ${style?.did}, after ${style?.name} (${style?.paper.cite}) (see Explanation traces).\n`,
    );
    const all = buildExport(
      source([explained(0), explained(1)], {
        runs: [{ runId: 'run-a', iterations: 2, summary: { ...summary, config } }],
      }),
      { validation: 0 },
    );
    expect(all.files.find((file) => file.path === 'README.md')?.content).toContain(
      `For every task, ${style?.did}`,
    );
  });
});

describe('the split', () => {
  const options = { validation: 0.2, splitSeed: '42' };

  it('holds out a fraction of the tasks, never all of them', () => {
    expect(validationSize(10, 0.1)).toBe(1);
    expect(validationSize(3, 0.5)).toBe(2);
    expect(validationSize(1, 0.5)).toBe(0);
    expect(validationSize(100, 0)).toBe(0);
    expect(validationSize(4, 0.1)).toBe(0);
  });

  it('is the same for the same seed, whatever the order of the tasks', () => {
    const tasks = many(40);
    const a = splitTasks(tasks, options);
    const b = splitTasks([...tasks].reverse(), options);
    const ids = (list: TaskLine[]) => list.map((t) => t.id).sort();
    expect(a.validation).toHaveLength(8);
    expect(ids(b.validation)).toEqual(ids(a.validation));
    expect(ids(splitTasks(tasks, { ...options, splitSeed: '7' }).validation)).not.toEqual(ids(a.validation));
  });

  it('never puts the instances of one task in both splits', () => {
    const built = buildExport(source(many(30)), { formats: ['jsonl'], validation: 0.3 });
    const train = parsed(built, 'jsonl', 'train');
    const validation = parsed(built, 'jsonl', 'validation');
    const trainIds = new Set(train.map((r) => r.task_id));
    expect(validation.length).toBeGreaterThan(0);
    expect(validation.filter((r) => trainIds.has(r.task_id))).toEqual([]);
    expect(train.length + validation.length).toBe(many(30).flatMap(toRecords).length);
    expect(built.counts.validation.tasks).toBe(9);
  });
});

describe('the selection', () => {
  it('leaves the seed tasks out unless asked', () => {
    const without = buildExport(source(many(6)), { formats: ['jsonl'], validation: 0 });
    const withSeeds = buildExport(source(many(6)), { formats: ['jsonl'], validation: 0, includeSeeds: true });
    const sources = (built: BuiltExport) => parsed(built, 'jsonl', 'train').map((r) => r.source);
    expect(sources(without)).not.toContain('seed');
    expect(sources(withSeeds).filter((s) => s === 'seed')).toHaveLength(3);
    expect(withSeeds.selection).toMatchObject({ machineTasks: 6, seedTasks: 3 });
  });

  it('refuses a quality threshold when no task has a score', () => {
    expect(() => buildExport(source(many(6)), { minQuality: 0.5 })).toThrow(ExportOptionsInvalid);
    expect(() => buildExport(source(many(6)), { minQuality: 0.5 })).toThrow(/none of the 6 machine tasks/);
  });

  it('keeps the machine tasks scored at or above the threshold, and the seeds', () => {
    const tasks = many(6).map((t, i) => (i < 4 ? { ...t, quality_score: i } : t));
    const built = buildExport(source(tasks), { minQuality: 2, includeSeeds: true, validation: 0 });
    expect(built.selection).toMatchObject({ machineTasks: 2, seedTasks: 3, belowQuality: 2, unscored: 2 });
    const ids = new Set(parsed(built, 'jsonl', 'train').map((r) => r.task_id));
    expect([...ids].filter((id) => id.startsWith('task-')).sort()).toEqual(['task-002', 'task-003']);
    expect(parsed(built, 'jsonl', 'train').find((r) => r.task_id === 'task-003')?.quality_score).toBe(3);
  });

  it('says there is nothing to export rather than writing empty files', () => {
    expect(() => buildExport(source([]))).toThrow(NothingToExport);
    expect(() => buildExport(source([]))).toThrow(/--include-seeds/);
  });

  it('rejects bad option values, naming the flag', () => {
    expect(() => buildExport(source(many(3)), { validation: 0.7 })).toThrow(/--validation/);
    expect(() => buildExport(source(many(3)), { splitSeed: '' })).toThrow(/--split-seed/);
    expect(() => buildExport(source(many(3)), { formats: ['csv' as ExportFormat] })).toThrow(/--format/);
  });
});

describe('readTasks', () => {
  it('reads a run’s export, its summary and its pool’s seeds', async () => {
    const objects = await bucket();
    const read = await readTasks(objects, { run: 'run-a' });
    expect(read).toMatchObject({ kind: 'run', name: 'run-a', pool: 'p', seedKey: 'pools/p/seeds.jsonl' });
    expect(read.tasks).toEqual(many(12));
    expect(read.seeds.map((s) => [s.id, s.source])).toEqual([
      ['seed_task_0', 'seed'],
      ['seed_task_1', 'seed'],
      ['seed_task_2', 'seed'],
    ]);
    expect(read.seedUploads).toEqual(['seeds/p/my-seeds.jsonl']);
    expect(read.runs).toEqual([{ runId: 'run-a', iterations: 2, summary: runSummary() }]);
  });

  it('reads every snapshot of a pool, iterations in numeric order, each task once', async () => {
    const objects = new MemoryObjects();
    await objects.put('pools/p/seeds.jsonl', lines([seedLine(0)]));
    await objects.put('pools/p/snapshots/run-a/iteration-10.jsonl', lines([task(3), task(1)]));
    await objects.put('pools/p/snapshots/run-a/iteration-2.jsonl', lines([task(2)]));
    await objects.put('pools/p/snapshots/run-a/iteration-3.jsonl', ''); // an iteration that added nothing
    await objects.put(
      'pools/p/snapshots/run-b/iteration-1.jsonl',
      lines([task(4, { run_id: 'run-b' }), task(2)]),
    );
    await objects.put(
      'exports/run-b/summary.json',
      JSON.stringify(runSummary({ runId: 'run-b', iterations: 1 })),
    );
    const read = await readTasks(objects, { pool: 'p' });
    expect(read.tasks.map((t) => t.id)).toEqual(['task-002', 'task-003', 'task-001', 'task-004']);
    expect(read.runs.map((r) => [r.runId, r.iterations, r.summary?.runId])).toEqual([
      ['run-a', 3, undefined],
      ['run-b', 1, 'run-b'],
    ]);
  });

  it('says which run or pool is missing, and why a run has no export', async () => {
    const objects = await bucket();
    await expect(readTasks(objects, { run: 'run-z' })).rejects.toThrow(NotFound);
    await expect(readTasks(objects, { run: 'run-z' })).rejects.toThrow(/latest exported runs: run-a/);
    await objects.put('runs/run-f/iteration-1/candidates.jsonl', '');
    await expect(readTasks(objects, { run: 'run-f' })).rejects.toThrow(/failed or has not finished/);
    await expect(readTasks(objects, { pool: 'q' })).rejects.toThrow(/no pool "q"/);
    await expect(readTasks(objects, { pool: 'Not A Pool' })).rejects.toThrow(ExportOptionsInvalid);
    await expect(readTasks(objects, { run: '../etc' })).rejects.toThrow(ExportOptionsInvalid);
  });

  it('names the object and line of a bad task', async () => {
    const objects = await bucket();
    await objects.put('exports/run-a/tasks.jsonl', `${JSON.stringify(task(1))}\n{"id":"x","instances":[]}\n`);
    await expect(readTasks(objects, { run: 'run-a' })).rejects.toThrow(/exports\/run-a\/tasks\.jsonl:2/);
  });
});

/** The dataset card of an export of `of` in jsonl. */
const cardOf = (of: TaskSource) => buildExport(of, { formats: ['jsonl'] }).files.at(-1)?.content ?? '';

describe('the dataset card', () => {
  const built = buildExport(source(many(20)), { validation: 0.25, includeSeeds: true, system: 'Be brief.' });
  const card = built.files.find((file) => file.path === 'README.md')?.content ?? '';
  const [, yaml = '', body = ''] = card.split(/^---$/m);

  it('has Hugging Face front matter with a config per format and a data file per split', () => {
    const meta = parseYaml(yaml);
    expect(meta).toMatchObject({
      license: 'other',
      license_name: 'not-chosen',
      license_link: 'README.md#license',
      language: ['en'],
      task_categories: ['text-generation'],
      size_categories: ['n<1K'],
      tags: ['self-instruct', 'synthetic'],
    });
    expect(yaml).toMatch(/^license: other # set the license/m);
    expect(meta.configs.map((c: { config_name: string }) => c.config_name)).toEqual([...EXPORT_FORMATS]);
    expect(meta.configs[0].default).toBe(true);
    expect(meta.configs[2].data_files).toEqual([
      { split: 'train', path: 'messages/train.jsonl' },
      { split: 'validation', path: 'messages/validation.jsonl' },
    ]);
    for (const config of meta.configs) {
      for (const file of config.data_files) expect(built.files.map((f) => f.path)).toContain(file.path);
    }
  });

  it('says why no license is set, and carries the one the user chooses', () => {
    expect(body).toMatch(/^## License\n\nNot chosen yet\./m);
    const chosen = buildExport(source(many(20)), { license: 'cc-by-4.0' });
    const chosenCard = chosen.files.find((file) => file.path === 'README.md')?.content ?? '';
    const [, chosenYaml = '', chosenBody = ''] = chosenCard.split(/^---$/m);
    expect(parseYaml(chosenYaml)).toMatchObject({ license: 'cc-by-4.0' });
    expect(parseYaml(chosenYaml).license_name).toBeUndefined();
    expect(chosenBody).toContain('`cc-by-4.0`, as chosen by whoever exported this data');
    expect(() => buildExport(source(many(20)), { license: 'CC BY 4.0' })).toThrow(/Hugging Face license id/);
  });

  it('gives the counts of each split and the fields of each format', () => {
    expect(built.counts.train.tasks + built.counts.validation.tasks).toBe(23);
    for (const split of ['train', 'validation'] as const) {
      const { tasks, records } = built.counts[split];
      expect(body).toContain(`| ${split} | ${tasks} | ${records} |`);
      for (const format of EXPORT_FORMATS) expect(parsed(built, format, split)).toHaveLength(records);
    }
    for (const format of EXPORT_FORMATS) {
      expect(body).toContain(`### ${format}`);
      for (const [field] of FORMATS[format].fields) expect(body).toContain(`| \`${field}\` |`);
    }
  });

  it('tells how the data was made and cites Self-Instruct', () => {
    expect(body.startsWith(`\n${CARD_MARKER}\n`)).toBe(true);
    expect(body).toContain('| model | `bedrock:amazon.nova-micro-v1:0` |');
    expect(body).toContain('| seed set | `pools/p/seeds.jsonl`: 3 tasks |');
    expect(body).toContain('$0.0120 (model $0.0100 + AWS $0.0020), $1.0000 per 1,000 tasks added');
    expect(body).toContain('system message `Be brief.`');
    expect(body).toContain('arXiv:2212.10560');
    expect(body).not.toContain('NOT TRAINING DATA');
  });

  it.each(Method.options)('says what method %s did, in the words of the method registry', (method) => {
    const config = { ...runSummary().config, method };
    const card = cardOf(
      source(many(3), { runs: [{ runId: 'run-a', iterations: 1, summary: runSummary({ config }) }] }),
    );
    const { name, paper, did } = METHODS[method];
    expect(card).toContain(`tasks, generated by \`selfinstruct\` with ${name} (${paper.cite}): ${did}.\n`);
    for (const other of Method.options.filter((m) => m !== method)) {
      expect(card).not.toContain(METHODS[other].did);
    }
    expect(card).toContain(`| method | \`${method}\` |`);
    // The citation names the method's paper; every method runs in Self-Instruct's loop, whose BibTeX follows.
    expect(card).toContain(`## Citation\n\nThe method is ${name} (${paper.cite}, ${paper.url})`);
    expect(card).toContain('arXiv:2212.10560');
    // A direct run says nothing of a teacher.
    expect(card).not.toContain(RESPONSE_STYLES.explained?.did);
  });

  it("sums batch mode's records: sent, served, failed and made on demand, and iterations run on demand", () => {
    const batch = {
      '1': {
        provider: 'bedrock' as const,
        jobId: 'job-1',
        planned: 120,
        sent: 120,
        served: 118,
        failed: 2,
        madeOnDemand: 2,
        belowMinimum: false,
      },
      '2': {
        provider: 'bedrock' as const,
        planned: 40,
        sent: 0,
        served: 0,
        failed: 0,
        madeOnDemand: 0,
        belowMinimum: true,
        reason: '40 instance calls, below the bedrock minimum of 100 records per batch job: made on demand',
      },
    };
    const card = cardOf(
      source(many(3), { runs: [{ runId: 'run-a', iterations: 2, summary: runSummary({ batch }) }] }),
    );
    expect(card).toContain(
      "| batch mode | 1 batch job (bedrock): 120 instance calls sent, 118 served from the jobs at the batch price, 2 failed by them (2 made on demand); 1 iteration run on demand, below the provider's minimum of records per job (40 instance calls) |",
    );
    expect(body).not.toContain('| batch mode |');
  });

  it('names each method of a pool whose runs used several, and says when none is recorded', () => {
    const runs = (['self-instruct', 'evol'] as const).map((method, i) => ({
      runId: `run-${i}`,
      iterations: 1,
      summary: runSummary({ runId: `run-${i}`, config: { ...runSummary().config, method } }),
    }));
    const card = cardOf(source(many(3), { kind: 'pool', name: 'p', runs }));
    const [self, evol] = [METHODS['self-instruct'], METHODS.evol];
    expect(card).toContain(
      `with 2 methods. Self-Instruct (${self.paper.cite}): ${self.did}. Evol-Instruct (${evol.paper.cite}): ${evol.did}.\n`,
    );
    expect(card).toContain(
      `The method is Evol-Instruct (${evol.paper.cite}, ${evol.paper.url}), run in the bootstrap loop of Self-Instruct`,
    );
    const unrecorded = cardOf(source(many(3), { runs: [{ runId: 'run-a', iterations: 1 }] }));
    expect(unrecorded).toContain('generated by `selfinstruct` (the method of its runs is not recorded).\n');
  });

  it('shows examples that parse as JSON', () => {
    const blocks = [...body.matchAll(/^```json\n([\s\S]*?)\n```$/gm)].map((m) => JSON.parse(m[1] ?? ''));
    expect(blocks.length).toBe(3 + 3);
    expect(JsonlRecord.parse(blocks[0])).toMatchObject({ task_id: 'task-000' });
    expect(MessagesRecord.parse(blocks[4])).toBeDefined();
  });

  it('names the prompt templates: the shipped ones, or the run’s own folder and files', () => {
    expect(body).toContain('| prompt templates | the shipped ones |');
    const config = {
      ...runSummary().config,
      templates: 'templates/run-a/',
      templateFiles: ['judge-user.txt'],
    };
    const own = source(many(3), {
      runs: [{ runId: 'run-a', iterations: 1, summary: runSummary({ config }) }],
    });
    const ownCard = buildExport(own, { formats: ['jsonl'] }).files.at(-1)?.content ?? '';
    expect(ownCard).toContain('| prompt templates | `templates/run-a/` (`judge-user.txt`) |');
  });

  it('says loudly that the offline model’s output is not training data', () => {
    const offline = source(many(3), {
      runs: [{ runId: 'run-a', iterations: 1, summary: runSummary({ model: 'offline' }) }],
    });
    const result = buildExport(offline, { formats: ['jsonl'] });
    expect(result.files.at(-1)?.content).toContain('> **⚠️ NOT TRAINING DATA.**');
    expect(result.warnings.join('\n')).toMatch(/offline stand-in/);
  });

  it('sizes the dataset in Hugging Face’s buckets', () => {
    expect([0, 999, 1000, 9999, 10_000, 2_000_000].map(sizeCategory)).toEqual([
      'n<1K',
      'n<1K',
      '1K<n<10K',
      '1K<n<10K',
      '10K<n<100K',
      '1M<n<10M',
    ]);
  });

  it('keeps backticks in the data from breaking its code', () => {
    expect(code('a`b')).toBe('``a`b``');
    expect(fence('x\n```\ny', 'json')).toBe('````json\nx\n```\ny\n````');
  });
});

describe('the streamed files', () => {
  it('are the bytes of the whole-file rendering in every format, over many chunks, and when empty', () => {
    const records = awkward(1500).flatMap(toRecords);
    for (const format of EXPORT_FORMATS) {
      const chunks = [...renderRecordChunks(format, records, { system: 'Be brief.' })];
      expect(chunks.length, format).toBeGreaterThan(3);
      expect(chunks.join(''), format).toBe(wholeFile(format, records, 'Be brief.'));
      expect([...renderRecordChunks(format, [])].join(''), format).toBe(wholeFile(format, []));
    }
  });

  it('are written by the command byte for byte as the whole-file rendering of each split', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'export-bytes-'));
    try {
      const tasks = awkward(1500);
      // One output left empty: the files leave its record out, as before.
      (tasks[3]?.instances[0] as { output: string }).output = '  ';
      const written = await exportDataset(await bucket(tasks), {
        source: { run: 'run-a' },
        outDir: dir,
        validation: 0.2,
        system: 'Be brief.',
        includeSeeds: true,
      });
      const selected = [...tasks, ...[0, 1, 2].map((n) => ({ ...seedLine(n), source: 'seed' as const }))];
      const splits = splitTasks(selected, { validation: 0.2, splitSeed: '42' });
      let compared = 0;
      for (const format of EXPORT_FORMATS) {
        for (const split of ['train', 'validation'] as const) {
          const records = splits[split].flatMap(toRecords).filter((record) => record.output.trim() !== '');
          const file = path.join(dir, format, `${split}.${FORMATS[format].ext}`);
          expect(readFileSync(file, 'utf8'), `${format}/${split}`).toBe(
            wholeFile(format, records, 'Be brief.'),
          );
          expect(written.counts[split]).toEqual({
            tasks: new Set(records.map((record) => record.task_id)).size,
            records: records.length,
          });
          compared++;
        }
      }
      expect(compared).toBe(8);
      expect(written.emptyOutputs).toBe(1);
      expect(splits.validation).toHaveLength(Math.round(1503 * 0.2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('exportDataset', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'export-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes each file, and a later export replaces what the earlier one wrote', async () => {
    const objects = await bucket();
    const first = await exportDataset(objects, { source: { run: 'run-a' }, outDir: dir });
    for (const file of first.files)
      expect(readFileSync(path.join(dir, file.path), 'utf8')).toBe(file.content);
    expect(existsSync(path.join(dir, 'bedrock', 'validation.jsonl'))).toBe(true);
    const text = readFileSync(path.join(dir, 'bedrock', 'train.jsonl'), 'utf8');
    expect(parseExportFile('bedrock', text, 'train.jsonl')).toHaveLength(first.counts.train.records);

    const second = await exportDataset(objects, {
      source: { pool: 'p' },
      outDir: dir,
      formats: ['messages'],
      validation: 0,
    });
    expect(second.removed).toContain('bedrock/validation.jsonl');
    expect(existsSync(path.join(dir, 'bedrock'))).toBe(false);
    expect(
      parseExportFile('messages', readFileSync(path.join(dir, 'train.jsonl'), 'utf8'), 'x'),
    ).toHaveLength(24);
  });

  it('does not overwrite files it did not write', async () => {
    writeFileSync(path.join(dir, 'README.md'), '# My project\n');
    await expect(exportDataset(await bucket(), { source: { run: 'run-a' }, outDir: dir })).rejects.toThrow(
      /README\.md.*choose another --out/,
    );
    expect(readFileSync(path.join(dir, 'README.md'), 'utf8')).toBe('# My project\n');
  });
});

describe('--select', () => {
  /** Vectors for the tasks of `many`, by task number: unit axes unless given. */
  const vectorsFor = (
    tasks: readonly TaskLine[],
    given: Record<number, number[]> = {},
  ): SelectionVectors => ({
    model: 'offline',
    vectors: new Map(
      tasks.map((t, n) => {
        const axis = Array.from({ length: tasks.length }, (_, i) => (i === n ? 1 : 0));
        return [t.instruction, Float32Array.from(given[n] ?? axis)];
      }),
    ),
    reused: tasks.length,
    embedded: 0,
    usage: { calls: 0, inputTokens: 0, outputTokens: 0, estimated: false },
    costUsd: 0,
  });
  const scored = (scores: readonly (number | undefined)[]) =>
    scores.map((score, n) => task(n, score === undefined ? {} : { quality_score: score }));
  const ids = (tasks: readonly TaskLine[]) => tasks.map((t) => t.id);

  it('picks the best-scored tasks first, unscored ones last', () => {
    const tasks = scored([3, undefined, 5, 1, 4]);
    const { picked, tooClose } = pickDiverse(
      tasks,
      (t) => vectorsFor(tasks).vectors.get(t.instruction) ?? [],
      {
        n: 3,
        threshold: 0.9,
      },
    );
    expect(ids(picked)).toEqual(['task-000', 'task-002', 'task-004']);
    expect(tooClose).toBe(0);
    expect(ids(tasks.slice().sort(bySelectionOrder)).at(-1)).toBe('task-001');
  });

  it('skips a task whose cosine to a picked one is above the threshold, and takes the next', () => {
    // Task 1 (score 4) is task 0's (score 5) near-twin: cosine 0.995; task 2 (score 3) is far from both.
    const tasks = scored([5, 4, 3]);
    const vectors = vectorsFor(tasks, { 0: [1, 0, 0], 1: [1, 0.1, 0], 2: [0, 0, 1] });
    const selection = selectTasks(
      { machine: tasks, seeds: [] },
      { includeSeeds: false, select: 2, selectThreshold: 0.9 },
      vectors,
    );
    expect(ids(selection.tasks)).toEqual(['task-000', 'task-002']);
    expect(selection.picked).toMatchObject({
      asked: 2,
      candidates: 3,
      written: 2,
      tooClose: 1,
      threshold: 0.9,
    });
    // At a threshold above their cosine both are kept.
    const loose = selectTasks(
      { machine: tasks, seeds: [] },
      { includeSeeds: false, select: 2, selectThreshold: 0.999 },
      vectors,
    );
    expect(ids(loose.tasks)).toEqual(['task-000', 'task-001']);
  });

  it('breaks ties by the audit answers, then by task id, whatever the input order', () => {
    const tasks = [
      task(7, { quality_score: 4, instruction_valid: true, input_appropriate: false, output_correct: false }),
      task(3, { quality_score: 4, instruction_valid: true, input_appropriate: true, output_correct: false }),
      task(5, { quality_score: 4, instruction_valid: true, input_appropriate: false, output_correct: false }),
      task(9, { quality_score: 4 }),
    ];
    const vectors = vectorsFor(tasks);
    const pick = (order: TaskLine[]) =>
      ids(
        pickDiverse(order, (t) => vectors.vectors.get(t.instruction) ?? [], { n: 2, threshold: 0.9 }).picked,
      ).sort();
    expect(pick(tasks)).toEqual(['task-003', 'task-005']);
    expect(pick(tasks.slice().reverse())).toEqual(['task-003', 'task-005']);
  });

  it('writes what survived when fewer than asked do, and says so in a warning and the card', () => {
    // Five paraphrases of one task: one survives.
    const tasks = scored([5, 4, 3, 2, 1]);
    const same = Object.fromEntries(tasks.map((_, n) => [n, [1, 0.01 * n, 0, 0, 0]]));
    const built = buildExport(
      source(tasks),
      { select: 3, validation: 0, formats: ['jsonl'] },
      vectorsFor(tasks, same),
    );
    expect(built.selection.machineTasks).toBe(1);
    expect(built.selection.picked).toMatchObject({ asked: 3, written: 1, tooClose: 4 });
    expect(built.warnings.join('\n')).toMatch(
      /--select 3: only 1 tasks written: of the 5 candidates, 4 were closer than cosine 0\.9/,
    );
    const card = built.files.find((f) => f.path === 'README.md')?.content ?? '';
    expect(card).toContain('## Selection');
    expect(card).toMatch(/\| written \| 1 \(fewer: the candidates ran out\) \|/);
    expect(card).toMatch(/\| skipped as too close \| 4 \|/);
    expect(card).toMatch(/\| embedding model \| `offline` \|/);
    expect(card).toContain('Left out: 4 tasks too close to a selected one.');
  });

  it('selects among the tasks --min-quality keeps, and leaves the seeds to --include-seeds', () => {
    const tasks = scored([5, 2, 4, 3, 4]);
    const built = buildExport(
      source(tasks),
      { minQuality: 4, select: 10, includeSeeds: true, validation: 0, formats: ['jsonl'] },
      vectorsFor(tasks),
    );
    expect(built.selection).toMatchObject({ machineTasks: 3, seedTasks: 3, belowQuality: 2 });
    expect(built.selection.picked).toMatchObject({ candidates: 3, written: 3 });
  });

  it('fails when there is no candidate at all', () => {
    const tasks = scored([1, 2]);
    expect(() =>
      buildExport(source(tasks), { minQuality: 4, select: 5, includeSeeds: true }, vectorsFor(tasks)),
    ).toThrow(/--select 5: no machine task to select from \(none scored ≥ 4\)/);
  });

  it('rejects a count that is not a whole number above 0', () => {
    expect(() => buildExport(source(many(3)), { select: 0 })).toThrow(/--select/);
    expect(() => buildExport(source(many(3)), { select: 2, selectThreshold: 1.5 })).toThrow(
      /--select-threshold/,
    );
  });

  it('reuses the pool’s stored vectors and embeds, counts and prices only the rest', async () => {
    const objects = await bucket();
    const config = parseRunInput({ pool: 'p', model: 'bedrock:amazon.nova-micro-v1:0' }, 'run-a');
    const runs = [{ runId: 'run-a', iterations: 2, summary: runSummary({ config }) }];
    const model = selectionModel({ runs });
    expect(model).toBe('bedrock:amazon.titan-embed-text-v2:0');
    const tasks = many(12);
    // An older file of another model, and the newest of the run's model holding tasks 0–7.
    const other = new VectorIndex('offline', 4);
    other.add(tasks[8]?.instruction ?? '', [1, 0, 0, 0]);
    await objects.put('pools/p/vectors/run-a/iteration-2.bin', other.toBuffer());
    const stored = new VectorIndex(model, 4);
    for (const t of tasks.slice(0, 8)) stored.add(t.instruction, [1, 0, 0, 0]);
    await objects.put('pools/p/vectors/run-a/iteration-1.bin', stored.toBuffer());
    const sent: string[][] = [];
    const embedder: Embedder = {
      id: model,
      dimensions: 4,
      textsPerCall: 1,
      billed: true,
      embed: async (texts) => texts.map(() => [0, 1, 0, 0]),
      async embedCall(texts) {
        sent.push(texts);
        return { vectors: texts.map(() => [0, 3, 0, 0]), inputTokens: 1_000_000, estimated: false };
      },
    };
    const vectors = await selectionVectors(objects, source(tasks, { runs }), tasks, {
      embedders: async () => embedder,
    });
    expect(sent.flat().sort()).toEqual(
      tasks
        .slice(8)
        .map((t) => t.instruction)
        .sort(),
    );
    expect(vectors).toMatchObject({
      model,
      reused: 8,
      storedKey: 'pools/p/vectors/run-a/iteration-1.bin',
      embedded: 4,
      usage: { calls: 4, inputTokens: 4_000_000 },
      costUsd: 0.08, // Titan V2: $0.02 per 1M input tokens
    });
    expect(Array.from(vectors.vectors.get(tasks[9]?.instruction ?? '') ?? [])).toEqual([0, 1, 0, 0]);
  });

  it('refuses --select-threshold without --select, and a count that is not a whole number', async () => {
    const parse = (args: string[]) =>
      exportCommand({ stdout: { write: () => true }, stderr: { write: () => true } })
        .exitOverride()
        .configureOutput({ writeErr: () => undefined })
        .parseAsync(['run-a', ...args], { from: 'user' });
    await expect(parse(['--select-threshold', '0.8'])).rejects.toThrow(
      '--select-threshold needs --select <n>',
    );
    await expect(parse(['--select', '2.5'])).rejects.toThrow(/expected a whole number/);
  });

  it('uses the default of the run’s model when the run had the gate off', () => {
    const summary = runSummary({
      model: 'offline',
      config: parseRunInput({ pool: 'p', embeddingModel: 'none' }, 'run-a'),
    });
    expect(selectionModel({ runs: [{ runId: 'run-a', iterations: 1, summary }] })).toBe('offline');
  });
});
