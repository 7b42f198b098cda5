/**
 * Lambda "Generate instances" (one Map item: a chunk of instruction ids, see `core.ts`), and batch
 * mode's two steps before the Map, by the input's `step`: "Submit the instance batch"
 * (`batch-submit.ts`) and "Check the instance batch" (`batch-check.ts`).
 */

import { z } from 'zod';
import { DynamoPoolStore } from '../shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../shared/adapters/s3.ts';
import { createBatchJobs } from '../shared/batch/index.ts';
import { requireEnv } from '../shared/config.ts';
import { logger, remainingTime, stageHandler } from '../shared/lambda.ts';
import { createTextModel } from '../shared/models/index.ts';
import { judgeModelOf, teacherModelOf } from '../shared/models/judge-ids.ts';
import { CheckBatchInput, checkBatch } from './batch-check.ts';
import { SubmitBatchInput, submitBatch } from './batch-submit.ts';
import { generateInstances, InstancesInput } from './core.ts';

const objects = new S3ObjectStore(requireEnv('BUCKET_NAME'));
const pool = new DynamoPoolStore(requireEnv('TABLE_NAME'));

const log = (message: string, details: Record<string, unknown>) => logger.info(message, details);

/** The function's input: a Map item's chunk, or one of batch mode's steps. */
const Input = z.union([SubmitBatchInput, CheckBatchInput, InstancesInput]);

export const handler = stageHandler('generate-instances', Input, async (input, context) => {
  if ('step' in input && input.step === 'submit-batch') {
    return submitBatch(input, {
      objects,
      pool,
      model: await createTextModel(input.config.model, { seed: input.config.seed, pool }),
      jobs: await createBatchJobs(input.config.model, objects, pool),
      remainingMs: remainingTime(context),
      log,
    });
  }
  if ('step' in input && input.step === 'check-batch') {
    return checkBatch(input, {
      objects,
      pool,
      jobs: await createBatchJobs(input.config.model, objects, pool),
      log,
    });
  }
  return chunk(input, context);
});

async function chunk(input: InstancesInput, context: Parameters<typeof remainingTime>[0]) {
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
}
