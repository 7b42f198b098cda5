/** Lambda "Score a gate shard": see `core.ts`. */

import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { requireEnv } from '../shared/config.ts';
import { stageHandler } from '../shared/lambda.ts';
import { GateShardInput, scoreGateShard } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));

export const handler = stageHandler('gateShard', GateShardInput, (input) =>
  scoreGateShard(input, { objects }),
);
