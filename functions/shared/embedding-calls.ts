/**
 * Embedding calls, counted like every other model call: each billed call is recorded in the run's call
 * ledger (`PoolStore.putCall`, stage `embed-instructions`) the moment its reply arrives, so "Save
 * iteration" adds its tokens and cost to the run, and calls of an attempt that fails later still count.
 * Throttled and transient failures are retried inside the function by the shared runner
 * (`ServiceCalls` in `model-calls.ts`); a call still failing after its retries fails the stage with that
 * error, for the state machine's Retry (a candidate without a vector cannot be gated). The offline
 * embedder bills nothing, so its calls are neither recorded nor counted.
 */
import { createHash } from 'node:crypto';
import { ServiceCalls, type ServiceCallsOptions } from './model-calls.ts';
import type { Embedder } from './models/embeddings.ts';
import { EMBEDDING_STAGE } from './ports.ts';
import type { Usage } from './schemas.ts';

export type EmbeddingCallsOptions = ServiceCallsOptions;

/** Embeds texts in calls of the embedder's size, retrying, counting and recording each billed call. */
export class EmbeddingCalls {
  private readonly calls: ServiceCalls;

  constructor(
    private readonly embedder: Embedder,
    options: EmbeddingCallsOptions = {},
  ) {
    this.calls = new ServiceCalls('embed', options);
  }

  /** Usage billed by this invocation's calls. */
  get usage(): Usage {
    return this.calls.usage;
  }

  /** One vector per text, in order. */
  async embed(texts: readonly string[]): Promise<number[][]> {
    const size = Math.max(1, this.embedder.textsPerCall);
    const batches: string[][] = [];
    for (let i = 0; i < texts.length; i += size) batches.push(texts.slice(i, i + size));
    const results = await Promise.all(batches.map((batch) => this.call(batch)));
    return results.flat();
  }

  private async call(texts: string[]): Promise<number[][]> {
    const reply = await this.calls.call(
      () => this.embedder.embedCall(texts),
      ({ inputTokens, estimated }) =>
        this.embedder.billed
          ? {
              stage: EMBEDDING_STAGE,
              promptHash: createHash('sha256').update(texts.join('\u0000')).digest('hex').slice(0, 16),
              model: this.embedder.id,
              inputTokens,
              estimated,
            }
          : undefined,
    );
    return reply.vectors;
  }
}
