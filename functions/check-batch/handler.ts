/** Lambda "Check the instance batch" (batch mode, one look per Wait): see `core.ts`. */

import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { createBatchJobs } from '../shared/batch/index.ts';
import { requireEnv } from '../shared/config.ts';
import { logger, stageHandler } from '../shared/lambda.ts';
import { CheckBatchInput, checkBatch } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

export const handler = stageHandler('check-batch', CheckBatchInput, async (input) =>
  checkBatch(input, {
    objects,
    pool,
    jobs: await createBatchJobs(input.config.model, objects),
    log: (message, details) => logger.info(message, details),
  }),
);
