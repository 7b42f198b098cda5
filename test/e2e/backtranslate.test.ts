/**
 * End to end, through the state machine on the local stack (IAM enforced), with the offline model: a run
 * given `--documents <dir>` (a .txt, .md, .html and .pdf) uploads them to `documents/<pool>/`, "Prepare
 * run" splits them into passages, each iteration backtranslates its share, the gate rejects instructions
 * repeated across passages, the judge curates (default `minQuality` 4 for the method), and every exported
 * task cites a document that is in the bucket and a span of its text that is the task's output (or, for a
 * grounded question, holds its answer).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractText } from '../../functions/shared/documents/extract.ts';
import { JsonlRecord } from '../../functions/shared/exports/schemas.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys, passagesKey } from '../../functions/shared/keys.ts';
import type { Passage, RunSummary, TaskLine } from '../../functions/shared/records.ts';
import { runLocal } from '../../infra/cli/run.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { exportedTasks } from '../support/local-stack.ts';

const FIXTURES = 'test/fixtures/documents';
const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-backtranslate-'));
const dataDir = path.join(work, 'data');
const squash = (text: string) => text.replace(/\s+/g, ' ').trim();

let summary: RunSummary;
let stack: LocalStack;
let tasks: TaskLine[];

beforeAll(async () => {
  const result = await runLocal(
    {
      dataDir,
      out: path.join(work, 'out'),
      fresh: true,
      pool: 'notes',
      documents: FIXTURES,
      groundedQuestions: '2',
      target: '1000',
      // A fixed seed (by default the run id's, random): the offline model's replies are the same each time.
      seed: 'backtranslate-e2e',
    },
    () => {},
  );
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  summary = result.summary as RunSummary;
  stack = await LocalStack.start({ dataDir });
  tasks = await exportedTasks(stack, summary.runId);
}, 240_000);

afterAll(async () => {
  await stack?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('a backtranslation run on a folder of documents', { timeout: 120_000 }, () => {
  it('runs as method backtranslate on the pool’s documents folder, which holds the folder’s files', async () => {
    expect(summary.config).toMatchObject({
      method: 'backtranslate',
      documents: 'documents/notes/',
      minQuality: 4,
      groundedQuestions: 2,
    });
    expect(await stack.objects.list('documents/notes/')).toEqual(
      readdirSync(FIXTURES)
        .sort()
        .map((name) => `documents/notes/${name}`),
    );
  });

  it('backtranslates every passage once over its iterations, in order', async () => {
    const passages = fromJsonLines<Passage>(await stack.objects.getText(passagesKey(summary.runId)));
    expect(passages.length).toBe(14);
    expect(new Set(passages.map((passage) => passage.document)).size).toBe(4);
    expect(summary.usage.calls).toBeGreaterThan(passages.length);
  });

  it('adds tasks, after the gate rejected repeats across passages and the judge those it scored below 4', () => {
    expect(summary.added).toBeGreaterThan(3);
    expect(tasks).toHaveLength(summary.added);
    expect(summary.counts.rouge ?? 0).toBeGreaterThan(0);
    expect(summary.counts['low-quality'] ?? 0).toBeGreaterThan(0);
    for (const task of tasks) {
      if (task.quality_score !== undefined) expect(task.quality_score).toBeGreaterThanOrEqual(4);
    }
  });

  it('makes every exported task cite a document in the bucket and a span whose text is its output', async () => {
    const texts = new Map<string, string>();
    const uses = new Set<string>();
    for (const task of tasks) {
      const key = task.source_document as string;
      expect(key.startsWith('documents/notes/')).toBe(true);
      if (!texts.has(key)) {
        const bytes = await stack.objects.getBytes(key);
        expect(bytes, key).toBeDefined();
        texts.set(key, await extractText(key, bytes as Uint8Array));
      }
      const [start, end] = task.source_span as [number, number];
      const text = texts.get(key) as string;
      expect(end).toBeLessThanOrEqual(text.length);
      expect(start).toBeLessThan(end);
      const span = text.slice(start, end);
      const [instance] = task.instances;
      expect(task.instances).toHaveLength(1);
      expect(instance?.input).toBe('');
      uses.add(task.source_use as string);
      if (task.source_use === 'output') expect(instance?.output).toBe(span);
      else expect(squash(span)).toContain(squash(instance?.output ?? ''));
    }
    // Both the passages themselves and questions grounded in them.
    expect(uses).toEqual(new Set(['output', 'grounding']));
  });

  it('carries the provenance into the dataset records', async () => {
    const records = fromJsonLines<unknown>(
      await stack.objects.getText(exportKeys(summary.runId).dataset),
    ).map((line) => JsonlRecord.parse(line));
    expect(records).toHaveLength(tasks.length);
    for (const record of records) {
      const task = tasks.find((candidate) => candidate.id === record.task_id) as TaskLine;
      expect(record).toMatchObject({
        source_document: task.source_document,
        source_span: task.source_span,
        source_use: task.source_use,
        output: task.instances[0]?.output,
      });
    }
  });
});
