/** Lambda "Generate instructions" (its plan, batch and collect steps): see `core.ts` and `batches.ts`. */
import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { requireEnv } from '../shared/config.ts';
import { remainingTime, stageHandler } from '../shared/lambda.ts';
import { createTextModel } from '../shared/models/index.ts';
import { InstructionsInput, runInstructionsStep } from './batches.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

export const handler = stageHandler('generate-instructions', InstructionsInput, async (state, context) =>
  runInstructionsStep(state, {
    objects,
    pool,
    model: await createTextModel(state.config.model, { seed: state.config.seed, pool }),
    remainingMs: remainingTime(context),
  }),
);
