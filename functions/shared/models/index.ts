/**
 * Chooses a `TextModel` adapter from a model id:
 * - `offline`: the deterministic stand-in (no network; for trying the pipeline, not for training data);
 * - `bedrock:<model id or inference profile>`: Amazon Bedrock through the Converse API.
 */
import { ModelRequestFailed } from '../errors.ts';
import type { TextModel } from '../ports.ts';

export interface ModelOptions {
  /** Seed of the offline model. */
  seed: string;
}

export async function createTextModel(id: string, { seed }: ModelOptions): Promise<TextModel> {
  if (id === 'offline' || id.startsWith('offline:')) {
    const { OfflineModel } = await import('./offline.ts');
    return new OfflineModel({ seed });
  }
  if (id.startsWith('bedrock:')) {
    const { BedrockModel } = await import('./bedrock.ts');
    return new BedrockModel(id);
  }
  throw new ModelRequestFailed(
    `Unknown model "${id}": use "offline" or "bedrock:<model id>" (for example bedrock:amazon.nova-micro-v1:0)`,
  );
}
