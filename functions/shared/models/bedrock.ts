/**
 * `TextModel` on Amazon Bedrock's Converse API: any text model id or inference profile.
 * The SDK makes one attempt only: throttling and service errors become named errors that the
 * state machine retries with backoff, so one component owns the retry policy.
 */
import { BedrockRuntimeClient, ConverseCommand } from '@aws-sdk/client-bedrock-runtime';
import { ModelRequestFailed, ModelThrottled, ModelUnavailable } from '../errors.ts';
import type { ModelReply, ModelRequest, TextModel } from '../ports.ts';

const client = new BedrockRuntimeClient({ maxAttempts: 1 });

const RETRYABLE = new Set([
  'ModelNotReadyException',
  'ServiceUnavailableException',
  'InternalServerException',
  'ModelTimeoutException',
  'TimeoutError',
]);

export class BedrockModel implements TextModel {
  private readonly modelId: string;

  constructor(readonly id: string) {
    this.modelId = id.slice('bedrock:'.length);
  }

  async generate(request: ModelRequest): Promise<ModelReply> {
    const started = performance.now();
    try {
      const reply = await client.send(
        new ConverseCommand({
          modelId: this.modelId,
          system: request.system ? [{ text: request.system }] : undefined,
          messages: [{ role: 'user', content: [{ text: request.prompt }] }],
          inferenceConfig: {
            temperature: request.temperature,
            topP: request.topP,
            maxTokens: request.maxTokens,
            stopSequences: request.stop?.slice(0, 4),
          },
        }),
      );
      const text = (reply.output?.message?.content ?? []).map((block) => block.text ?? '').join('');
      return {
        text,
        finish: reply.stopReason === 'max_tokens' ? 'length' : 'stop',
        usage: {
          inputTokens: reply.usage?.inputTokens ?? 0,
          outputTokens: reply.usage?.outputTokens ?? 0,
          estimated: reply.usage === undefined,
        },
        latencyMs: Math.round(performance.now() - started),
        model: this.id,
      };
    } catch (error) {
      const name = (error as { name?: string }).name ?? 'Error';
      const message = `Bedrock ${this.modelId}: ${name}: ${(error as Error).message}`;
      if (name === 'ThrottlingException' || name === 'ServiceQuotaExceededException') {
        throw new ModelThrottled(message, { cause: error });
      }
      if (RETRYABLE.has(name)) throw new ModelUnavailable(message, { cause: error });
      throw new ModelRequestFailed(message, { cause: error });
    }
  }
}
