/** Lambda "Record failure": see `core.ts`. */
import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { requireEnv } from '../shared/config.ts';
import { stageHandler } from '../shared/lambda.ts';
import { FailureInput, recordFailure } from './core.ts';

const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

export const handler = stageHandler('record-failure', FailureInput, (input) =>
  recordFailure(input, { pool }),
);
