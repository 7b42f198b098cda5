/**
 * The Map of a per-item fan-out (a chunk of ids, a gate shard): a Distributed Map, so that its items'
 * events are not the parent execution's (see `perItemMap`). Its own module so that `workflow.ts` and
 * `sharded-gate.ts` both use it without importing each other.
 */
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';

/**
 * A Map whose items each run as a Standard child workflow execution (a Distributed Map), items still
 * from the state input: each item's events go to its child's history (25,000 events each), the
 * parent's records only the Map Run (MapRunStarted, MapRunSucceeded or MapRunFailed), so the parent's
 * history no longer grows per item. No failure is tolerated (`ToleratedFailure` 0, the default): an
 * item failing after its Retry fails the Map Run, and a redrive of the run redrives only the Map Run's
 * unsuccessful children. No `ResultWriter`: the items' results come back inline (the Map's result is
 * still one state payload, 256 KB). CDK grants the state machine's role `states:StartExecution` on
 * itself and `states:DescribeExecution` / `StopExecution` / `RedriveExecution` on its executions.
 * Takes a plain Map's props (itemsPath, maxConcurrencyPath, itemSelector, resultPath …).
 */
export function perItemMap(scope: Construct, id: string, props: sfn.MapProps): sfn.DistributedMap {
  const { parameters: _parameters, ...rest } = props;
  return new sfn.DistributedMap(scope, id, {
    ...rest,
    mapExecutionType: sfn.StateMachineType.STANDARD,
    // Names the Map Run (and its children's ARNs), so the redrive grant covers only this Map's.
    label: mapRunLabel(id),
  });
}

/** The Map Run label of a per-item Map (letters and digits of its state name). */
export const mapRunLabel = (stateName: string) => stateName.replace(/[^A-Za-z0-9]/g, '');
