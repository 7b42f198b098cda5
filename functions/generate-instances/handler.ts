/** Lambda "Generate instances" (one Map item: a chunk of instruction ids): see `core.ts`. */

import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { requireEnv } from '../shared/config.ts';
import { remainingTime, stageHandler } from '../shared/lambda.ts';
import { createTextModel } from '../shared/models/index.ts';
import { judgeModelOf, teacherModelOf } from '../shared/models/judge-ids.ts';
import { generateInstances, InstancesInput } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

export const handler = stageHandler('generate-instances', InstancesInput, async (input, context) => {
  const options = { seed: `${input.config.seed}:chunk-${input.chunk.index}`, pool };
  const judge = judgeModelOf(input.config);
  const teacher = teacherModelOf(input.config);
  return generateInstances(input, {
    objects,
    pool,
    model: await createTextModel(input.config.model, options),
    // A judge of its own only when it is another model than the run's (see `core.ts`).
    judge:
      judge === undefined || judge === input.config.model
        ? undefined
        : await createTextModel(judge, { ...options, seed: `${options.seed}:judge` }),
    // Likewise the teacher of explained responses (see `explain.ts`).
    teacher:
      teacher === undefined || teacher === input.config.model
        ? undefined
        : await createTextModel(teacher, { ...options, seed: `${options.seed}:teach` }),
    remainingMs: remainingTime(context),
  });
});
