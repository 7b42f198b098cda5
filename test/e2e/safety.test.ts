/**
 * End to end, through the state machine on the local stack: the safety screen drops candidate
 * instructions (and instances) it flags, counted as `unsafe-<category>`, and none of the flagged words
 * reaches the export; with the lexicon by default, with an OpenAI-compatible `/moderations` endpoint, and
 * with the stack's Amazon Bedrock guardrail (CDK context `selfinstruct:guardrail`) on the Bedrock
 * stand-in, under local IAM (the functions may apply that guardrail alone), through throttling, with
 * every billed call counted and priced.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys, runKeys } from '../../functions/shared/keys.ts';
import { SAFETY_STAGE } from '../../functions/shared/ports.ts';
import { shippedPrices } from '../../functions/shared/pricing/pricing.ts';
import { GateRecord, RunSummary } from '../../functions/shared/records.ts';
import { GUARDRAIL_PRICE_ID, LexiconScreen } from '../../functions/shared/safety.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { exportedTasks } from '../support/local-stack.ts';
import {
  type RecordedRequest,
  type StandIn,
  startBedrockStandIn,
  startOpenAIStandIn,
} from '../support/model-servers.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-safety-'));
let stack: LocalStack;
let openai: StandIn;
let bedrock: StandIn;
/** Guardrail calls still to throttle (429) before answering. */
let throttle = 0;

const isApply = (request: RecordedRequest) => request.path.endsWith('/apply');

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
  const exported = await exportedTasks(stack, summary.runId);
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
  return { result, summary, gate, texts, files: files.join('\n') };
};

beforeAll(async () => {
  process.env.SELFINSTRUCT_RETRY_BASE_MS = '5';
  process.env.SELFINSTRUCT_RETRY_MAX_MS = '50';
  openai = await startOpenAIStandIn({ noise: 0 });
  bedrock = await startBedrockStandIn({
    guardrailWords: { kill: 'VIOLENCE' },
    fault: (request) => (isApply(request) && throttle-- > 0 ? { status: 429 } : undefined),
  });
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDGUARDRAIL',
    AWS_SECRET_ACCESS_KEY: 'guardrail-secret',
  });
  stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    context: {
      'selfinstruct:allowedModelEndpoints': [openai.url],
      'selfinstruct:guardrail': { filters: { VIOLENCE: 'HIGH' } },
    },
  });
}, 180_000);

afterAll(async () => {
  await stack?.close();
  await openai?.close();
  await bedrock?.close();
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
  it('drops what the stack’s Bedrock guardrail blocks, through throttling, every billed call counted and priced', async () => {
    bedrock.reset();
    throttle = 2;

    const { result, summary, gate, texts, files } = await runWithSeeds('guarded', ['kill', 'kill', 'kill'], {
      safetyScreen: 'bedrock-guardrail',
    });

    // The stack's guardrail, its first version; instructions as INPUT, instances as OUTPUT.
    const applied = bedrock.requests.filter(isApply);
    expect(new Set(applied.map((request) => request.path))).toEqual(
      new Set([`/guardrail/${applied[0]?.model}/version/1/apply`]),
    );
    expect(new Set(applied.map((request) => request.body?.source))).toEqual(new Set(['INPUT', 'OUTPUT']));
    // Throttled twice, retried inside the stage: the state machine saw no failure.
    expect(applied.filter((request) => request.reply?.status === 429)).toHaveLength(2);
    expect(result.events.filter((event) => event.type === 'StateRetried')).toEqual([]);
    const unsafe = gate.filter((decision) => decision.reason === 'unsafe-violence');
    expect(unsafe.length).toBeGreaterThan(0);
    for (const decision of unsafe) expect(decision.instruction).toMatch(/\bkill\b/i);
    expect(summary.counts['unsafe-violence']).toBe(unsafe.length);
    expect(texts.filter((text) => /\bkill\b/i.test(text))).toEqual([]);
    expect(files.match(/\bkill\b/gi)).toBeNull();
    // Every answered call is in the run's usage, its content-filter units priced at the table's rate.
    const answered = applied.filter((request) => request.reply?.status === 200);
    const units = answered.reduce((sum, request) => {
      const content = (request.body?.content ?? []) as { text: { text: string } }[];
      return sum + content.reduce((n, block) => n + Math.ceil(block.text.text.length / 1000), 0);
    }, 0);
    const run = await stack.pool.getRun(summary.runId);
    expect(run?.stageUsage?.[`${SAFETY_STAGE}:calls`]).toBe(answered.length);
    expect(run?.stageUsage?.[`${SAFETY_STAGE}:inputTokens`]).toBe(units);
    const rate = shippedPrices().models[GUARDRAIL_PRICE_ID]?.inputPer1M ?? Number.NaN;
    expect(run?.cost?.[`model:${SAFETY_STAGE}`]).toBeCloseTo((units * rate) / 1_000_000, 12);
  });

  it('refuses, in "Prepare run" and before any call, a guardrail other than the stack’s', async () => {
    bedrock.reset();

    const result = await stack.execute(
      { pool: 'other', target: 10, safetyScreen: 'bedrock-guardrail:someoneelses:1' },
      { retryIntervalMs: 10 },
    );

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(/may apply this deployment's guardrail .* only/);
    expect(bedrock.requests).toEqual([]);
  });
});
