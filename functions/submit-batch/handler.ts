/** Lambda "Submit the instance batch" (batch mode): see `core.ts`. */

import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { createBatchJobs } from '../shared/batch/index.ts';
import { requireEnv } from '../shared/config.ts';
import { logger, remainingTime, stageHandler } from '../shared/lambda.ts';
import { createTextModel } from '../shared/models/index.ts';
import { SubmitBatchInput, submitBatch } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

export const handler = stageHandler('submit-batch', SubmitBatchInput, async (input, context) =>
  submitBatch(input, {
    objects,
    pool,
    // The seed of the Map items' models: the classification calls are theirs.
    model: await createTextModel(input.config.model, { seed: `${input.config.seed}:batch`, pool }),
    jobs: await createBatchJobs(input.config.model, objects),
    remainingMs: remainingTime(context),
    log: (message, details) => logger.info(message, details),
  }),
);
