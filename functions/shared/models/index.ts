/**
 * Chooses a `TextModel` adapter from a model id (run input `model`, CLI `--model`); the accepted forms
 * are documented and parsed in `model-ids.ts`. The adapters are imported when chosen, so a function
 * loads only the SDK of the provider it calls.
 */
import { ModelRequestFailed } from '../errors.ts';
import type { PoolStore, TextModel } from '../ports.ts';
import { parseModelId } from './model-ids.ts';
import { ReplayModel } from './replay.ts';

/** Options of `createTextModel`. */
export interface ModelOptions {
  /** Seed of the offline model. */
  seed: string;
  /** The pool table, whose call ledger a `replay:` model reads the recorded run from. */
  pool?: PoolStore;
  /** Time allowed for one model call before it fails as `ModelUnavailable`. @default 120000 */
  timeoutMs?: number;
}

/** Builds the `TextModel` a model id names; throws `ModelRequestFailed` on an id of no accepted form. */
export async function createTextModel(
  id: string,
  { seed, timeoutMs, pool }: ModelOptions,
): Promise<TextModel> {
  const spec = parseModelId(id);
  switch (spec.provider) {
    case 'replay': {
      if (!pool) throw new ModelRequestFailed(`${id}: replaying needs the table of the recorded run`);
      const fallback = spec.fallback
        ? await createTextModel(spec.fallback, { seed, timeoutMs, pool })
        : undefined;
      return new ReplayModel(spec.runId, pool, fallback);
    }
    case 'offline': {
      const { OfflineModel } = await import('./offline.ts');
      return new OfflineModel({ seed });
    }
    case 'bedrock': {
      const { BedrockModel } = await import('./bedrock.ts');
      return new BedrockModel(id, { timeoutMs });
    }
    case 'openai':
    case 'openai-compatible': {
      const { OpenAIModel } = await import('./openai.ts');
      return new OpenAIModel(id, spec, { timeoutMs });
    }
  }
}
