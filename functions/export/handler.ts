/** Lambda "Export dataset": see `core.ts`. */

import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { requireEnv } from '../shared/config.ts';
import { stageHandler } from '../shared/lambda.ts';
import { RunState } from '../shared/schemas.ts';
import { STAGES } from '../stages.ts';
import { exportDataset } from './core.ts';
import { spillLimitBytes } from './spill-size.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

// The spill may take the function's /tmp, as `infra/workflow.ts` sizes it, but its reserve.
const spillLimit = spillLimitBytes(STAGES.exportDataset.ephemeralStorageMb);

export const handler = stageHandler('export', RunState, (state) =>
  exportDataset(state, { objects, pool }, { spillLimitBytes: spillLimit }),
);
