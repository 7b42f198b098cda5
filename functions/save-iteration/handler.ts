/** Lambda "Save iteration": see `core.ts`. */

import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { requireEnv } from '../shared/config.ts';
import { stageHandler } from '../shared/lambda.ts';
import { SaveInput } from '../shared/schemas.ts';
import { saveIteration } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

export const handler = stageHandler('save-iteration', SaveInput, (input) =>
  saveIteration(input, { objects, pool }),
);
