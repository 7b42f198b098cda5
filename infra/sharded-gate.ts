/**
 * The states of the sharded ROUGE-L gate (`functions/shared/gate-shards.ts`), between "Generate
 * instructions" and the instances Map:
 *
 *   Gate in shards? ─ pool below `shardGateAbove` → Filter and deduplicate (the gate in-process)
 *                   └ else → Plan the gate shards → Score gate shards (Map: highest scores)
 *                          → Decide on the shard scores → Score gate shards again (Map: top 10, mean)
 *                          → Filter and merge the shard scores
 * The Maps carry shard descriptors (keys and offsets of the pool's segments), the shards' results go to
 * the iteration's `gate-shards/` folder in S3 (2,000 candidates' top 10 and pairwise shares pass 256 KB),
 * and each step's output is the same small shape, so the payloads stay far below Step Functions' limit.
 */
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as stepfunctions from 'aws-cdk-lib/aws-stepfunctions';
import type * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { CONTROL_STATES, SHARDED_GATE_STATES, STAGES, type StageKey } from '../functions/stages.ts';
import { perItemMap } from './per-item-map.ts';

/** Builds a stage's Task state (named `name` when the function runs in more than one state). */
export type InvokeStage = (
  stage: StageKey,
  options?: Partial<tasks.LambdaInvokeProps>,
  name?: string,
) => tasks.LambdaInvoke;

/**
 * The Choice "Gate in shards?" with its two paths, today's `filter` and the sharded one, both going on
 * to `next` (the instances Map): chain it after "Generate instructions".
 */
export function shardedGate(
  scope: Construct,
  {
    invoke,
    filter,
    filterPayload,
    runState,
    next,
  }: {
    invoke: InvokeStage;
    /** Today's "Filter and deduplicate" (the small-pool path, unchanged). */
    filter: sfn.INextable & sfn.IChainable;
    /** The Filter's payload (run state and candidates key). */
    filterPayload: Record<string, unknown>;
    /** The run state's fields, for the Maps' items. */
    runState: Record<string, string>;
    /** The state after the gate. */
    next: sfn.IChainable;
  },
): stepfunctions.Choice {
  const filterStep = (name: string, phase: 'plan' | 'decide' | 'merge', result: Record<string, string>) =>
    invoke(
      'filter',
      {
        payload: stepfunctions.TaskInput.fromObject({
          ...filterPayload,
          gateShards: { phase, ...(phase === 'plan' ? {} : { 'shards.$': '$.gateShards.shards' }) },
        }),
        resultSelector: result,
        resultPath: phase === 'merge' ? '$.gated' : '$.gateShards',
      },
      name,
    );
  const shardMap = (mapName: string, taskName: string, step: 'highest' | 'scores') => {
    const map = perItemMap(scope, mapName, {
      itemsPath: '$.gateShards.shards',
      maxConcurrencyPath: '$.config.gateShards',
      itemSelector: { ...runState, 'shard.$': '$$.Map.Item.Value', step },
      resultPath: stepfunctions.JsonPath.DISCARD,
    });
    map.itemProcessor(invoke('gateShard', { resultSelector: { 'key.$': '$.Payload.key' } }, taskName));
    return map;
  };
  const plan = filterStep(SHARDED_GATE_STATES.plan, 'plan', {
    'shards.$': '$.Payload.shards',
    'candidates.$': '$.Payload.candidates',
  });
  const decide = filterStep(SHARDED_GATE_STATES.decide, 'decide', {
    'shards.$': '$.Payload.shards',
    'candidates.$': '$.Payload.candidates',
  });
  const merge = filterStep(SHARDED_GATE_STATES.merge, 'merge', {
    'chunks.$': '$.Payload.chunks',
    'counts.$': '$.Payload.counts',
  });
  plan
    .next(shardMap(STAGES.gateShard.mapState, STAGES.gateShard.state, 'highest'))
    .next(decide)
    .next(shardMap(SHARDED_GATE_STATES.rescoreMap, SHARDED_GATE_STATES.rescore, 'scores'))
    .next(merge)
    .next(next);
  filter.next(next);
  return new stepfunctions.Choice(scope, CONTROL_STATES.shardGate)
    .when(
      // A run started before the sharded gate has no `shardGateAbove`: a redrive of it gates in-process.
      stepfunctions.Condition.and(
        stepfunctions.Condition.isPresent('$.config.shardGateAbove'),
        stepfunctions.Condition.numberGreaterThanEqualsJsonPath(
          '$.progress.poolSize',
          '$.config.shardGateAbove',
        ),
      ),
      plan,
      { comment: 'A pool this large: the gate as parallel shards over its segments' },
    )
    .otherwise(filter);
}
