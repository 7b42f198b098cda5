/**
 * End to end, through the state machine on the local stack (IAM enforced), with the offline model: a run
 * given `--templates <dir>` uploads the folder's templates to its own folder in the bucket, and every
 * stage renders them (the raw call records hold the prompts sent); templates it does not give stay the
 * shipped ones; the offline model still answers in a format the parsers read. A bad template stops the
 * CLI before anything starts, and a bad template in the bucket stops the run in "Prepare run", before any
 * model call, with the file and placeholder named.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableCause } from '../../functions/record-failure/core.ts';
import { RunInputInvalid } from '../../functions/shared/errors.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { runKeys, runPrefix, runTemplatesPrefix } from '../../functions/shared/keys.ts';
import type { CallRecord } from '../../functions/shared/model-calls.ts';
import { JUDGE_STAGE } from '../../functions/shared/ports.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import { runLocal } from '../../infra/cli/run.ts';
import { LocalStack } from '../../infra/local/stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-templates-'));
const dataDir = path.join(work, 'data');
const folder = path.join(work, 'my-templates');
const USER = 'Tasks for lawyers:\n{{demonstrations}}\nWrite {{count}} new tasks about contract law.\n';
const JUDGE = 'Audit for a law firm.\nInstruction: {{instruction}}\n{{count}} examples:\n{{instances}}\n';
const shipped = (stage: string, name: string) =>
  readFileSync(`functions/${stage}/prompts/${name}`, 'utf8').replace(/\n$/, '');

let summary: RunSummary;
let stack: LocalStack;

beforeAll(async () => {
  mkdirSync(folder);
  writeFileSync(path.join(folder, 'default-user.txt'), USER);
  writeFileSync(path.join(folder, 'judge-user.txt'), JUDGE);
  writeFileSync(path.join(folder, 'README.md'), 'Not a template: only *.txt files are uploaded.');
  const result = await runLocal(
    {
      dataDir,
      out: path.join(work, 'out'),
      fresh: true,
      pool: 'lawyers',
      target: '1000',
      iterations: '1',
      promptsPerIteration: '2',
      seed: 'templates-test',
      templates: folder,
    },
    () => {},
  );
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  summary = result.summary as RunSummary;
  stack = await LocalStack.start({ dataDir });
}, 240_000);

afterAll(async () => {
  await stack?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('a run with its own templates', { timeout: 120_000 }, () => {
  it('uploads the folder’s templates to a folder of its own and records it in the run input', async () => {
    const prefix = runTemplatesPrefix(summary.runId);
    expect(summary.config.templates).toBe(prefix);
    expect(await stack.objects.list(prefix)).toEqual([
      `${prefix}default-user.txt`,
      `${prefix}judge-user.txt`,
    ]);
  });

  it('sends the run’s template in every instruction prompt, rendered exactly, and the shipped system message', async () => {
    const raw = fromJsonLines<CallRecord>(
      await stack.objects.getText(runKeys(summary.runId, 1).raw('generate-instructions')),
    );
    expect(raw).toHaveLength(2);
    for (const call of raw) {
      // Eight numbered demonstrations, then the count the default profile asks for.
      expect(call.prompt).toMatch(
        /^Tasks for lawyers:\n(?:[1-8]\. [^\n]+\n){8}Write 10 new tasks about contract law\.$/,
      );
      expect(call.system).toBe(shipped('generate-instructions', 'default-system.txt'));
    }
  });

  it('sends it in the judge prompts of the Map items, and the shipped instance prompts', async () => {
    const keys = (await stack.objects.list(`${runPrefix(summary.runId)}iteration-1/raw/`)).filter((key) =>
      key.includes('generate-instances-chunk-'),
    );
    const calls = (await Promise.all(keys.map((key) => stack.objects.getText(key)))).flatMap((text) =>
      fromJsonLines<CallRecord>(text),
    );
    const judged = calls.filter((call) => call.stage === JUDGE_STAGE);
    const instances = calls.filter((call) => call.stage === 'generate-instances');
    expect(judged.length).toBeGreaterThan(0);
    expect(instances.length).toBeGreaterThan(0);
    for (const call of judged) {
      expect(call.prompt).toMatch(
        /^Audit for a law firm\.\nInstruction: .+\n\d examples:\nExample 1\nInput: /,
      );
    }
    const shippedInstances = shipped('generate-instances', 'default-instances-generation.txt').split(
      '{{instruction}}',
    );
    for (const call of instances.filter((c) => !c.prompt.includes('classification task'))) {
      expect(call.prompt.endsWith(shippedInstances[1] as string)).toBe(true);
    }
  });

  it('gets replies the parsers read from the offline model, and adds tasks judged by the template', () => {
    // Two calls asking for 10 tasks each; the offline model's noise spoils a few items on purpose.
    expect(summary.counts.generated).toBeGreaterThan(10);
    expect(summary.added).toBeGreaterThan(5);
    // Every task would be unscored if the judge's replies to the template could not be read.
    expect(summary.counts['judge-unparseable'] ?? 0).toBeLessThan(summary.added);
  });
});

describe('a bad template', { timeout: 120_000 }, () => {
  it('stops the CLI before anything starts, naming the file and the placeholder', async () => {
    const bad = path.join(work, 'bad-templates');
    mkdirSync(bad);
    writeFileSync(
      path.join(bad, 'default-user.txt'),
      'Tasks:\n{{demonstrations}}\nWrite {{count}} on {{topic}}.',
    );
    const run = runLocal({ dataDir: path.join(work, 'unused'), out: work, templates: bad }, () => {});

    await expect(run).rejects.toThrow(RunInputInvalid);
    await expect(run).rejects.toThrow(
      `${bad}/default-user.txt has the unknown placeholder {{topic}} (default-user.txt takes {{demonstrations}}, {{count}})`,
    );
  });

  it('in the bucket stops the run in "Prepare run", before any model call, naming the file and the placeholder', async () => {
    await stack.objects.put('templates/bad/judge-user.txt', 'Rate {{instruction}}: {{score}}');
    const result = await stack.execute(
      { pool: 'lawyers', templates: 'templates/bad/', target: 5, maxIterations: 1 },
      { executionName: 'bad-templates' },
    );

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RunInputInvalid');
    expect(readableCause(result.error ?? '', result.cause)).toContain(
      'templates/bad/judge-user.txt has the unknown placeholder {{score}} and lacks the required placeholders {{count}}, {{instances}} (judge-user.txt takes {{instruction}}, {{count}}, {{instances}})',
    );
    const entered = result.events.flatMap((event) =>
      'state' in event && event.type === 'StateEntered' ? [event.state.name] : [],
    );
    expect(entered).not.toContain('Plan instructions');
    expect(await stack.objects.list(runPrefix('bad-templates'))).toEqual([]);
  });
});
