/**
 * The `BatchJobs` adapter of a run's model (batch mode): Amazon Bedrock batch inference for a
 * `bedrock:` model, OpenAI's Batch API for an `openai:` model (`openai.ts`); any other model is refused (`checkBatchModel`, also run by "Prepare run").
 */
import { requireEnv } from '../config.ts';
import { ConfigurationError } from '../errors.ts';
import type { ObjectStore, PoolStore } from '../ports.ts';
import { type BatchJobs, checkBatchModel, openAIBatchEndpoint } from './jobs.ts';

/** The env variable holding the ARN of the service role Bedrock assumes for batch jobs. */
export const BATCH_ROLE_ENV = 'BATCH_ROLE_ARN';

export async function createBatchJobs(
  model: string,
  objects: ObjectStore,
  pool: PoolStore,
): Promise<BatchJobs> {
  checkBatchModel(model);
  const openAI = openAIBatchEndpoint(model);
  if (openAI) {
    const { OpenAIBatchJobs } = await import('./openai.ts');
    return new OpenAIBatchJobs(objects, openAI, pool);
  }
  const { BedrockBatchJobs } = await import('./bedrock.ts');
  const role = process.env[BATCH_ROLE_ENV];
  if (!role) {
    throw new ConfigurationError(
      `batch mode on ${model} needs a deployment for that Bedrock model (context selfinstruct:model): this one may not start batch jobs`,
    );
  }
  return new BedrockBatchJobs(objects, requireEnv('BUCKET_NAME'), role);
}
