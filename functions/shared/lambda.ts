/**
 * What every stage handler shares: the structured logger, and `stageHandler`, which validates the
 * event against the stage's zod schema at the boundary and tags every log line with run and stage.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { z } from 'zod';
import { SelfInstructError } from './errors.ts';

export const logger = new Logger({ serviceName: 'selfinstruct' });

/** The event a stage received does not match its schema (a wiring error, not a user error). */
export class StageInputInvalid extends SelfInstructError {}

/** The part of Lambda's context object the stages use. */
export interface StageContext {
  /** Milliseconds left before the function times out. */
  getRemainingTimeInMillis?: () => number;
}

/** Milliseconds the function has left: Lambda's count, or unbounded where there is none (tools, tests). */
export const remainingTime = (context: StageContext | undefined) => () =>
  context?.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY;

/** Wraps a stage's function as a Lambda handler. */
export function stageHandler<S extends z.ZodType, R>(
  stage: string,
  schema: S,
  run: (input: z.infer<S>, context?: StageContext) => Promise<R>,
): (event: unknown, context?: StageContext) => Promise<R> {
  return async (event, context) => {
    const parsed = schema.safeParse(event);
    if (!parsed.success) {
      throw new StageInputInvalid(
        `${stage}: unexpected input: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    const input = parsed.data as { runId?: string; progress?: { iteration?: number } };
    logger.resetKeys();
    logger.appendKeys({ stage, runId: input.runId, iteration: input.progress?.iteration });
    try {
      const result = await run(parsed.data, context);
      logger.info('stage done');
      return result;
    } catch (error) {
      logger.error('stage failed', error as Error);
      throw error;
    }
  };
}
