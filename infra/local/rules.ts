/**
 * EventBridge on the local stack: the "Step Functions Execution Status Change" event AWS emits when an
 * execution ends, and the template's rules that match it, with their Lambda targets. Generic: any rule
 * of the template whose pattern matches and whose target is one of the template's functions runs.
 */
import { type CfnTemplate, type LocalNames, resolveIntrinsics, resourcesOfType } from './template.ts';

/** The statuses an execution ends with. */
export type ExecutionStatus = 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

/** The event Step Functions sends to EventBridge when an execution's status changes (its real shape). */
export interface ExecutionStatusChange {
  version: '0';
  id: string;
  'detail-type': 'Step Functions Execution Status Change';
  source: 'aws.states';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: {
    executionArn: string;
    stateMachineArn: string;
    name: string;
    status: ExecutionStatus;
    startDate: number;
    stopDate: number;
    input: string;
    inputDetails: { included: boolean };
    output: string | null;
    outputDetails: { included: boolean } | null;
    error: string | null;
    cause: string | null;
    /** How often the execution was redriven (0 before any redrive). */
    redriveCount: number;
    /** When it was last redriven (milliseconds since the epoch), null before any redrive. */
    redriveDate: number | null;
  };
}

/** A rule's Lambda target, with what the target is given. */
export interface RuleTarget {
  rule: string;
  functionArn: string;
  /** The target's input: the event itself unless the target sets `Input`. */
  input: (event: unknown) => unknown;
}

type Pattern = Record<string, unknown>;

/** True when `value` matches one entry of an EventBridge pattern array. */
function matchesEntry(entry: unknown, value: unknown): boolean {
  if (entry === null || typeof entry !== 'object') {
    return Array.isArray(value) ? value.includes(entry) : value === entry;
  }
  const { prefix, ...rest } = entry as { prefix?: unknown };
  if (typeof prefix === 'string' && Object.keys(rest).length === 0) {
    return typeof value === 'string' && value.startsWith(prefix);
  }
  throw new Error(`local EventBridge: unsupported pattern operator ${JSON.stringify(entry)}`);
}

/** EventBridge's matching of a pattern against an event (exact values and `prefix`). */
export function matchesPattern(pattern: Pattern, event: unknown): boolean {
  return Object.entries(pattern).every(([key, expected]) => {
    const value = (event as Record<string, unknown> | undefined)?.[key];
    if (Array.isArray(expected)) return expected.some((entry) => matchesEntry(entry, value));
    if (expected !== null && typeof expected === 'object') return matchesPattern(expected as Pattern, value);
    throw new Error(`local EventBridge: a pattern's leaves must be arrays (${key})`);
  });
}

/** The Lambda targets of the template's rules whose pattern matches `event`. */
export function targetsFor(template: CfnTemplate, names: LocalNames, event: unknown): RuleTarget[] {
  const found: RuleTarget[] = [];
  for (const [id, resource] of resourcesOfType(template, 'AWS::Events::Rule')) {
    const properties = resolveIntrinsics(resource.Properties ?? {}, names) as {
      EventPattern?: Pattern;
      State?: string;
      Targets?: { Arn: string; Input?: string; InputPath?: string; InputTransformer?: unknown }[];
    };
    if (!properties.EventPattern || properties.State === 'DISABLED') continue;
    if (!matchesPattern(properties.EventPattern, event)) continue;
    for (const target of properties.Targets ?? []) {
      if (!target.Arn.startsWith('arn:aws:lambda:')) continue;
      if (target.InputPath || target.InputTransformer) {
        throw new Error(`local EventBridge: rule ${id}: only Input or the whole event is supported`);
      }
      const input = target.Input;
      found.push({
        rule: id,
        functionArn: target.Arn,
        input: (e) => (input === undefined ? e : JSON.parse(input)),
      });
    }
  }
  return found;
}
