/**
 * Embedding calls, counted like every other model call (see `model-calls.ts`): each billed call is
 * recorded in the run's call ledger (`PoolStore.putCall`, stage `embed-instructions`) the moment its
 * reply arrives, so "Save iteration" adds its tokens and cost to the run, and calls of an attempt that
 * fails later still count. Throttled (`ModelThrottled`) and transient (`ModelUnavailable`) failures are
 * retried inside the function with the runner's backoff and adaptive concurrency; a call still failing
 * after its retries fails the stage with that error, for the state machine's Retry (a candidate without
 * a vector cannot be gated). Vectors are not kept in the ledger (a batch of them is megabytes), so a
 * retried stage pays for its embeddings again, and counts them again. The offline embedder bills
 * nothing, so its calls are neither recorded nor counted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { backOff } from 'exponential-backoff';
import { ModelThrottled, ModelUnavailable } from './errors.ts';
import {
  AdaptiveLimit,
  addUsage,
  type CallLedger,
  emptyUsage,
  type RetryPolicy,
  retryPolicy,
  TIME_RESERVE_MS,
} from './model-calls.ts';
import type { Embedder } from './models/embeddings.ts';
import { EMBEDDING_STAGE } from './ports.ts';
import type { Usage } from './schemas.ts';

export interface EmbeddingCallsOptions {
  ledger?: CallLedger;
  /** The ceiling of calls at once. @default 8 */
  concurrency?: number;
  retry?: RetryPolicy;
  /** Milliseconds the function has left. @default unbounded */
  remainingMs?: () => number;
}

const retryable = (error: unknown) => error instanceof ModelThrottled || error instanceof ModelUnavailable;

/** Embeds texts in calls of the embedder's size, retrying, counting and recording each billed call. */
export class EmbeddingCalls {
  /** Usage billed by this invocation's calls. */
  readonly usage: Usage = emptyUsage();
  private readonly limit: AdaptiveLimit;
  private readonly retry: RetryPolicy;
  private calls = 0;

  constructor(
    private readonly embedder: Embedder,
    private readonly options: EmbeddingCallsOptions = {},
  ) {
    this.limit = new AdaptiveLimit(options.concurrency ?? 8);
    this.retry = options.retry ?? retryPolicy();
  }

  /** One vector per text, in order. */
  async embed(texts: readonly string[]): Promise<number[][]> {
    const size = Math.max(1, this.embedder.textsPerCall);
    const batches: string[][] = [];
    for (let i = 0; i < texts.length; i += size) batches.push(texts.slice(i, i + size));
    const results = await Promise.all(batches.map((batch) => this.call(batch)));
    return results.flat();
  }

  private timeLeft(): number {
    return this.options.remainingMs?.() ?? Number.POSITIVE_INFINITY;
  }

  private async call(texts: string[]): Promise<number[][]> {
    const started = Date.now();
    const reply = await backOff(
      () =>
        this.limit.run(() => {
          if (this.timeLeft() < TIME_RESERVE_MS) {
            throw new ModelUnavailable('no time left in this function for another embedding call');
          }
          return this.embedder.embedCall(texts);
        }),
      {
        numOfAttempts: this.retry.attempts,
        startingDelay: this.retry.baseDelayMs,
        maxDelay: this.retry.maxDelayMs,
        jitter: 'full',
        retry: (error) => retryable(error) && this.timeLeft() >= TIME_RESERVE_MS + this.retry.maxDelayMs,
      },
    );
    const number = this.calls++;
    if (!this.embedder.billed) return reply.vectors;
    if (this.options.ledger) {
      const { pool, runId, iteration, scope } = this.options.ledger;
      await pool.putCall(runId, {
        callKey: `${iteration}#${scope}#embed-${number}`,
        callId: randomUUID(),
        stage: EMBEDDING_STAGE,
        iteration,
        promptHash: createHash('sha256').update(texts.join('\u0000')).digest('hex').slice(0, 16),
        model: this.embedder.id,
        finish: 'stop',
        inputTokens: reply.inputTokens,
        outputTokens: 0,
        estimated: reply.estimated,
        latencyMs: Date.now() - started,
        at: new Date().toISOString(),
      });
    }
    addUsage(this.usage, {
      calls: 1,
      inputTokens: reply.inputTokens,
      outputTokens: 0,
      estimated: reply.estimated,
    });
    return reply.vectors;
  }
}
