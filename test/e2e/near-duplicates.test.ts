/**
 * End to end, through the state machine on the local stack (IAM enforced): the near-duplicate gate
 * rejects candidates by embedding with their nearest instruction and cosine in `gate.jsonl`, commits its
 * vectors with the pool (a later iteration loads them), and survives a throttling embedding provider
 * with every billed embedding call counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VectorIndex } from '../../functions/shared/engine/vector-index.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { runKeys } from '../../functions/shared/keys.ts';
import { wordVectorEmbedding } from '../../functions/shared/models/word-vectors.ts';
import { loadIndex } from '../../functions/shared/pool-index.ts';
import { EMBEDDING_STAGE } from '../../functions/shared/ports.ts';
import { GateRecord } from '../../functions/shared/records.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import type { StandIn } from '../support/model-servers.ts';
import { type StandInStack, startStandInStack } from '../support/stand-in-stack.ts';

let world: StandInStack;
let stack: LocalStack;
let openai: StandIn;
let throttle = false;

const run = (input: Record<string, unknown>) => world.run(input);
const decisionsOf = async (runId: string, iteration: number) =>
  fromJsonLines<unknown>(await stack.objects.getText(runKeys(runId, iteration).gate)).map((line) =>
    GateRecord.parse(line),
  );
const cosine = (a: string, b: string) => {
  const [x, y] = [wordVectorEmbedding(a), wordVectorEmbedding(b)];
  return x.reduce((sum, value, i) => sum + value * (y[i] as number), 0);
};

beforeAll(async () => {
  let embeddingRequests = 0;
  world = await startStandInStack('near-duplicates', {
    apiKey: 'sk-test-near-duplicates',
    noise: 0,
    // Every other embedding request throttled, while `throttle` is set.
    fault: (request) =>
      throttle && request.path.endsWith('/embeddings') && embeddingRequests++ % 2 === 0
        ? { status: 429 }
        : undefined,
  });
  ({ stack, openai } = world);
}, 120_000);

afterAll(() => world?.close());

describe('the near-duplicate gate', { timeout: 240_000 }, () => {
  it('rejects candidates whose cosine to the pool is above the threshold, naming the nearest instruction and its cosine', async () => {
    const threshold = 0.85;
    const summary = await run({
      pool: 'near',
      target: 1000,
      maxIterations: 2,
      promptsPerIteration: 6,
      embeddingThreshold: threshold,
    });
    expect(summary.config.embeddingModel).toBe('offline');

    const decisions = [...(await decisionsOf(summary.runId, 1)), ...(await decisionsOf(summary.runId, 2))];
    const nearDuplicates = decisions.filter((decision) => decision.reason === 'near-duplicate');
    expect(nearDuplicates.length).toBeGreaterThan(0);
    expect(summary.counts['near-duplicate']).toBe(nearDuplicates.length);
    const seeds = fromJsonLines<{ instruction: string }>(
      await stack.objects.getText('pools/near/seeds.jsonl'),
    );
    expect(seeds.length).toBeGreaterThan(0);
    const known = new Set([
      ...seeds.map((seed) => seed.instruction),
      ...decisions
        .filter((decision) => decision.status === 'accepted')
        .map((decision) => decision.instruction),
    ]);
    for (const decision of nearDuplicates) {
      expect(decision.status).toBe('rejected');
      expect(decision.nearest_cosine).toBeGreaterThan(threshold);
      expect(known.has(decision.nearest_instruction as string), decision.nearest_instruction).toBe(true);
      // The cosine the gate reports is the offline embedding's, recomputed here.
      expect(decision.nearest_cosine).toBeCloseTo(
        cosine(decision.instruction, decision.nearest_instruction as string),
        5,
      );
    }
    // What the ROUGE-L gate and the embeddings passed: nothing above the threshold.
    for (const decision of decisions.filter((decision) => decision.status === 'accepted')) {
      expect(decision.nearest_cosine).toBeLessThanOrEqual(threshold);
    }

    // The vectors are committed with the pool: seeds and every instruction accepted, from one model.
    const meta = await stack.pool.getMeta('near');
    expect(meta?.vectorsKey).toBe(`pools/near/vectors/${summary.runId}/iteration-2.bin`);
    const vectors = VectorIndex.fromBuffer(
      (await stack.objects.getBytes(meta?.vectorsKey ?? '')) as Uint8Array,
    );
    expect(vectors.model).toBe('offline');
    for (const instruction of known) expect(vectors.vectorOf(instruction), instruction).toBeDefined();
    for (const decision of nearDuplicates) expect(vectors.vectorOf(decision.instruction)).toBeUndefined();
    // Nor are they in the ROUGE-L index: no later candidate was compared with one.
    const rouge = await loadIndex(stack.objects, meta?.indexKey ?? '');
    const inIndex = new Set(rouge.instructions);
    expect(rouge.size).toBe(known.size);
    for (const decision of nearDuplicates) expect(inIndex.has(decision.instruction)).toBe(false);
    const rejected = new Set(nearDuplicates.map((decision) => decision.instruction));
    for (const decision of decisions) {
      for (const similar of Object.keys(decision.most_similar ?? {}))
        expect(rejected.has(similar)).toBe(false);
    }
  });

  it('completes when the embedding provider throttles, with every billed embedding call counted', async () => {
    openai.reset();
    throttle = true;
    try {
      const summary = await run({
        pool: 'throttled',
        target: 1000,
        maxIterations: 1,
        promptsPerIteration: 3,
        model: `openai-compatible:stand-in-chat@${openai.url}`,
        embeddingModel: `openai-compatible:stand-in-embed@${openai.url}`,
      });
      const embeddings = openai.requests.filter((request) => request.path.endsWith('/embeddings'));
      const billed = embeddings.filter((request) => request.reply?.status === 200);
      expect(embeddings.filter((request) => request.reply?.status === 429).length).toBeGreaterThan(0);
      expect(billed.length).toBeGreaterThan(0);
      const record = await stack.pool.getRun(summary.runId);
      expect(record?.stageUsage?.[`${EMBEDDING_STAGE}:calls`]).toBe(billed.length);
      const chat = openai.requests.filter(
        (request) => request.path.endsWith('/chat/completions') && request.reply?.status === 200,
      );
      expect(summary.usage.calls).toBe(chat.length + billed.length);
    } finally {
      throttle = false;
    }
  });
});
