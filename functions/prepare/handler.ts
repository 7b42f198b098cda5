/** Lambda "Prepare run": see `core.ts`. */

import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { requireEnv } from '../shared/config.ts';
import { stageHandler } from '../shared/lambda.ts';
import { operatorLimitsFromEnv } from '../shared/limits.ts';
import { PrepareInput, prepareRun } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));
const limits = operatorLimitsFromEnv();

export const handler = stageHandler('prepare', PrepareInput, (input) =>
  prepareRun(input, { objects, pool, limits }),
);
