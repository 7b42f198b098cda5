/**
 * End to end, through the state machine on the local stack: the safety screen drops candidate
 * instructions (and instances) it flags, counted as `unsafe-<category>`, and none of the flagged words
 * reaches the export; with the lexicon by default and with an OpenAI-compatible `/moderations` endpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys, runKeys } from '../../functions/shared/keys.ts';
import { GateRecord, RunSummary, TaskLine } from '../../functions/shared/records.ts';
import { LexiconScreen } from '../../functions/shared/safety.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { type StandIn, startOpenAIStandIn } from '../support/model-servers.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-safety-'));
let stack: LocalStack;
let openai: StandIn;

/** Seed tasks, a few of them with the given words in their instructions. */
const seedFile = (words: readonly string[]) =>
  (<{ instruction: string; input?: string; output: string }[]>[
    ...words.map((word, i) => ({
      instruction: `Explain why the ${word} weather ruins a picnic number ${i + 1}.`,
      output: 'Rain and wind make it hard to eat outside.',
    })),
    { instruction: 'Write a haiku about the first snow of the year.', output: 'Soft white silence falls' },
    {
      instruction: 'Summarize the paragraph in one sentence.',
      input: 'Bees pollinate crops.',
      output: 'Bees help crops.',
    },
    { instruction: 'Translate the sentence into French.', input: 'Good morning.', output: 'Bonjour.' },
    { instruction: 'Classify the review as positive or negative.', input: 'I loved it.', output: 'positive' },
    { instruction: 'Give three tips for staying focused while studying.', output: '1. Silence the phone.' },
    { instruction: 'Suggest a name for a bakery that sells only bread.', output: 'The Daily Loaf' },
  ])
    .map(({ instruction, input, output }, i) =>
      JSON.stringify({
        id: `s${i}`,
        name: `seed-${i}`,
        instruction,
        instances: [{ input: input ?? '', output }],
        is_classification: false,
      }),
    )
    .join('\n');

const runWithSeeds = async (name: string, words: readonly string[], input: Record<string, unknown> = {}) => {
  const key = `uploads/${name}.jsonl`;
  await stack.objects.put(key, seedFile(words));
  const result = await stack.execute(
    // A fixed seed (by default the run id's, random): the offline model's replies are the same each time.
    {
      pool: name,
      seed: name,
      seedKey: key,
      target: 1000,
      maxIterations: 2,
      promptsPerIteration: 12,
      ...input,
    },
    { retryIntervalMs: 10 },
  );
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  const summary = RunSummary.parse(result.output);
  const exported = fromJsonLines<unknown>(await stack.objects.getText(exportKeys(summary.runId).tasks)).map(
    (line) => TaskLine.parse(line),
  );
  const gate = [
    ...fromJsonLines<unknown>(await stack.objects.getText(runKeys(summary.runId, 1).gate)),
    ...fromJsonLines<unknown>(await stack.objects.getText(runKeys(summary.runId, 2).gate)),
  ].map((line) => GateRecord.parse(line));
  const texts = exported.flatMap((task) => [
    task.instruction,
    ...task.instances.flatMap(({ input, output }) => [input, output]),
  ]);
  // Every byte the Export stage wrote, provenance fields (the nearest instruction, a seed's) included.
  const keys = exportKeys(summary.runId);
  const files = await Promise.all(
    [keys.tasks, keys.dataset, keys.alpaca].map(async (key) => (await stack.objects.getText(key)) ?? ''),
  );
  return { summary, gate, texts, files: files.join('\n') };
};

beforeAll(async () => {
  openai = await startOpenAIStandIn({ noise: 0 });
  stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    context: { 'selfinstruct:allowedModelEndpoints': [openai.url] },
  });
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await openai?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('the safety screen', { timeout: 240_000 }, () => {
  it('drops the candidates the lexicon flags, and none of their words reaches the export', async () => {
    const { summary, gate, texts, files } = await runWithSeeds('profane', [
      'shitty',
      'fucking',
      'damn shitty',
    ]);

    const unsafe = gate.filter((decision) => decision.reason === 'unsafe-profanity');
    expect(unsafe.length).toBeGreaterThan(0);
    expect(summary.counts['unsafe-profanity']).toBe(unsafe.length);
    for (const decision of unsafe) expect(decision.instruction).toMatch(/shit|fuck/i);
    expect(texts.length).toBeGreaterThan(0);
    expect(texts.filter((text) => /shit|fuck/i.test(text))).toEqual([]);
    expect((await new LexiconScreen().screen(texts)).filter(Boolean)).toEqual([]);
    expect(files.match(/\b\w*(shit|fuck)\w*\b/gi)).toBeNull();
  });

  it('drops what an OpenAI-compatible moderation endpoint flags, by its category', async () => {
    const { summary, gate, texts, files } = await runWithSeeds('moderated', ['kill', 'kill', 'kill'], {
      safetyScreen: `openai-compatible:stand-in-moderation@${openai.url}`,
    });

    const moderations = openai.requests.filter((request) => request.path.endsWith('/moderations'));
    expect(moderations.length).toBeGreaterThan(0);
    const unsafe = gate.filter((decision) => decision.reason === 'unsafe-violence');
    expect(unsafe.length).toBeGreaterThan(0);
    expect(summary.counts['unsafe-violence']).toBe(unsafe.length);
    expect(texts.filter((text) => /\bkill\b/i.test(text))).toEqual([]);
    expect(files.match(/\bkill\b/gi)).toBeNull();
  });
});
