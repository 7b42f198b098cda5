import { describe, expect, it } from 'vitest';
import { ModelRequestFailed, ModelThrottled, ModelUnavailable } from '../../functions/shared/errors.ts';
import {
  AdaptiveLimit,
  MAX_LOST_SHARE,
  ModelCalls,
  type RetryPolicy,
  retryPolicy,
  TIME_RESERVE_MS,
} from '../../functions/shared/model-calls.ts';
import type { ModelReply, ModelRequest, TextModel } from '../../functions/shared/ports.ts';
import { MemoryPool } from './fakes.ts';

const FAST: RetryPolicy = { attempts: 8, baseDelayMs: 1, maxDelayMs: 2 };

const request = (prompt: string): ModelRequest => ({
  stage: 'generate-instructions',
  format: 'instructions/default',
  kind: 'chat',
  prompt,
  temperature: 0.7,
  topP: 1,
  maxTokens: 100,
});

/** A model whose `fail` decides, per call of a prompt (1, 2, …), whether it throws; it counts its calls. */
class ScriptedModel implements TextModel {
  readonly id = 'scripted';
  readonly calls = new Map<string, number>();
  running = 0;
  maxRunning = 0;
  constructor(private readonly fail: (prompt: string, call: number) => Error | undefined = () => undefined) {}
  get total() {
    return [...this.calls.values()].reduce((a, b) => a + b, 0);
  }
  async generate({ prompt }: ModelRequest): Promise<ModelReply> {
    const call = (this.calls.get(prompt) ?? 0) + 1;
    this.calls.set(prompt, call);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await new Promise((resolve) => setTimeout(resolve, 1));
    this.running--;
    const error = this.fail(prompt, call);
    if (error) throw error;
    return {
      text: `reply to ${prompt}`,
      finish: 'stop',
      usage: { inputTokens: 10, outputTokens: 5, estimated: false },
      latencyMs: 1,
      model: 'scripted',
    };
  }
}

const ledger = (pool = new MemoryPool(), runId = 'run-1') => ({
  pool,
  runId,
  iteration: 1,
  scope: 'instructions',
});

describe('the model call runner', () => {
  it('retries throttled and transient calls inside the function until they succeed', async () => {
    const model = new ScriptedModel((prompt, call) => {
      if (prompt === 'a' && call <= 3) return new ModelThrottled('429');
      if (prompt === 'b' && call <= 2) return new ModelUnavailable('503');
      return undefined;
    });
    const calls = new ModelCalls(model, { retry: FAST });
    const replies = await Promise.all(['a', 'b', 'c'].map((p) => calls.call(request(p))));

    expect(replies.map((reply) => reply?.text)).toEqual(['reply to a', 'reply to b', 'reply to c']);
    expect(Object.fromEntries(model.calls)).toEqual({ a: 4, b: 3, c: 1 });
    expect(calls.lost).toBe(0);
    // Only answered calls are billed.
    expect(calls.usage['generate-instructions']).toEqual({
      calls: 3,
      inputTokens: 30,
      outputTokens: 15,
      estimated: false,
    });
  });

  it('keeps the calls that succeeded and counts a call lost after all its attempts', async () => {
    const model = new ScriptedModel((prompt) => (prompt === 'p0' ? new ModelThrottled('429') : undefined));
    const calls = new ModelCalls(model, { retry: FAST });
    const prompts = Array.from({ length: 10 }, (_, i) => `p${i}`);
    const replies = await Promise.all(prompts.map((p) => calls.call(request(p))));

    expect(replies.filter(Boolean)).toHaveLength(9);
    expect(model.calls.get('p0')).toBe(FAST.attempts);
    expect(calls.lost).toBe(1);
    // 1 of 10 is within the share a stage may lose.
    expect(MAX_LOST_SHARE).toBe(0.1);
    expect(() => calls.checkLosses()).not.toThrow();
  });

  it('gives up, as ModelThrottled for the state machine, when more than 10% of the calls are lost', async () => {
    const model = new ScriptedModel((prompt) =>
      prompt < 'p2' ? new ModelThrottled('429 from the server') : undefined,
    );
    const calls = new ModelCalls(model, { retry: FAST });
    await Promise.all(Array.from({ length: 10 }, (_, i) => calls.call(request(`p${i}`))));

    expect(calls.lost).toBe(2);
    expect(() => calls.checkLosses()).toThrow(ModelThrottled);
    expect(() => calls.checkLosses()).toThrow(
      /^2 of 10 model calls still failed after 8 attempts each .*429 from the server$/,
    );
  });

  it('fails fast on a permanent error, and makes no call after it', async () => {
    const model = new ScriptedModel((prompt) =>
      prompt === 'p0' ? new ModelRequestFailed('401 bad key') : undefined,
    );
    const calls = new ModelCalls(model, { retry: FAST, concurrency: 1 });
    const results = await Promise.allSettled(['p0', 'p1', 'p2'].map((p) => calls.call(request(p))));

    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(model.total).toBe(1);
  });

  it('stops retrying when the function has too little time left, and counts the call lost', async () => {
    let left = 10 * 60_000;
    const model = new ScriptedModel(() => {
      left = TIME_RESERVE_MS - 1; // the first attempt took almost all the time there was
      return new ModelUnavailable('timeout');
    });
    const calls = new ModelCalls(model, { retry: FAST, remainingMs: () => left });
    expect(await calls.call(request('p'))).toBeUndefined();
    expect(model.total).toBe(1);
    expect(calls.lost).toBe(1);
  });

  it('records each billed call as its reply arrives, including those of an attempt that then fails', async () => {
    const pool = new MemoryPool();
    const model = new ScriptedModel((prompt) =>
      prompt === 'p2' ? new ModelRequestFailed('400') : undefined,
    );
    const calls = new ModelCalls(model, { retry: FAST, ledger: ledger(pool), concurrency: 1 });
    await expect(
      Promise.all(['p0', 'p1', 'p2'].map((p, i) => calls.call(request(p), `prompt-${i}`))),
    ).rejects.toThrow(ModelRequestFailed);

    const recorded = await pool.listCalls('run-1', '');
    expect(recorded.map((call) => [call.callKey, call.inputTokens, call.outputTokens])).toEqual([
      ['1#instructions#prompt-0', 10, 5],
      ['1#instructions#prompt-1', 10, 5],
    ]);
  });

  it('serves a retried attempt the recorded reply of the same call instead of paying for it again', async () => {
    const pool = new MemoryPool();
    const model = new ScriptedModel();
    const first = new ModelCalls(model, { retry: FAST, ledger: ledger(pool) });
    await first.call(request('p0'), 'prompt-0');
    const retry = new ModelCalls(model, { retry: FAST, ledger: ledger(pool) });
    const again = await retry.call(request('p0'), 'prompt-0');
    // The same key with another prompt is another call.
    await retry.call(request('p0, changed'), 'prompt-0');

    expect(again?.text).toBe('reply to p0');
    expect(model.total).toBe(2);
    expect(retry.usage['generate-instructions']?.calls).toBe(1);
    expect(retry.records.map((record) => record.reused ?? false)).toEqual([true, false]);
    expect(await pool.listCalls('run-1', '1#instructions#')).toHaveLength(2);
  });

  it('reads faster waits for local runs from the environment, and the default policy otherwise', () => {
    expect(retryPolicy({})).toEqual({ attempts: 8, baseDelayMs: 500, maxDelayMs: 20_000 });
    expect(retryPolicy({ SELFINSTRUCT_RETRY_BASE_MS: '5', SELFINSTRUCT_RETRY_MAX_MS: '50' })).toEqual({
      attempts: 8,
      baseDelayMs: 5,
      maxDelayMs: 50,
    });
    expect(() => retryPolicy({ SELFINSTRUCT_RETRY_BASE_MS: 'soon' })).toThrow(/SELFINSTRUCT_RETRY_BASE_MS/);
  });
});

describe('the adaptive concurrency limit', () => {
  it('halves on throttling, once per window, and grows back by one per window of successes', async () => {
    const limit = new AdaptiveLimit(8);
    const throttled = () =>
      limit.run(async () => {
        throw new ModelThrottled('429');
      });
    // Eight calls throttled at once: one decrease, not eight.
    await Promise.allSettled(Array.from({ length: 8 }, throttled));
    expect(limit.concurrency).toBe(4);
    await Promise.allSettled([throttled()]);
    expect(limit.concurrency).toBe(2);
    // Additive increase: about `limit` successes per step.
    for (let i = 0; i < 2; i++) await limit.run(async () => 'ok');
    expect(limit.concurrency).toBe(2);
    for (let i = 0; i < 3; i++) await limit.run(async () => 'ok');
    expect(limit.concurrency).toBe(3);
    for (let i = 0; i < 100; i++) await limit.run(async () => 'ok');
    expect(limit.concurrency).toBe(8);
  });

  it('never runs more calls at once than the limit allows, lowering it while calls are throttled', async () => {
    const seen: number[] = [];
    const model = new ScriptedModel((_, call) => {
      seen.push(calls.limit.concurrency);
      return call === 1 ? new ModelThrottled('429') : undefined;
    });
    const calls = new ModelCalls(model, { retry: FAST, concurrency: 4 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => calls.call(request(`p${i}`))));
    expect(model.total).toBe(40);
    expect(model.maxRunning).toBeLessThanOrEqual(4);
    expect(Math.min(...seen)).toBeLessThan(4);
  });
});
