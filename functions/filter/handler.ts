/** Lambda "Filter and deduplicate": see `core.ts`. */

import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { requireEnv } from '../shared/config.ts';
import { remainingTime, stageHandler } from '../shared/lambda.ts';
import { gateEmbedderOptions } from '../shared/models/embedding-ids.ts';
import { createEmbedder } from '../shared/models/embeddings.ts';
import { FilterInput, filterStep } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

export const handler = stageHandler('filter', FilterInput, (input, context) =>
  filterStep(input, {
    objects,
    pool,
    embedders: (id) => createEmbedder(id, gateEmbedderOptions(id)),
    remainingMs: remainingTime(context),
  }),
);
