/**
 * Faults the local runtime injects into an execution, the way AWS and a crashing Lambda produce them,
 * so that the pipeline's tolerance of them can be proven. A plan is a list of faults; each names the
 * invocations it applies to (a predicate on the task state, the input and the attempt) and, for the
 * faults that strike mid-invocation, the request they strike at (the n-th request matching a predicate
 * on service, operation and key). The plan is data: the same plan gives the same faults, and the
 * benchmark draws its plans from a seed.
 */
import type { AwsService } from '../../functions/shared/config.ts';
import type { AwsRequest } from './iam.ts';

/** One Lambda invocation as a fault predicate sees it. */
export interface InvocationInfo {
  /** The task state that invoked the function, e.g. `Generate instances for a chunk`. */
  state: string;
  /** The function's name (its logical id locally). */
  functionName: string;
  /** The payload the function got. */
  input: unknown;
  /** 1 for the first delivery of this input to this state, 2 for the next (a retry), … */
  attempt: number;
  /** The raw input of the enclosing Map state, for a task that runs inside a Map item. */
  mapInput?: unknown;
}

/** A request of an invocation as a fault predicate sees it: an AWS request or a model provider's. */
export type RuntimeRequest = Omit<AwsRequest, 'service'> & { service: AwsService | 'model' };

/** What a crashed function reports to the state machine (Step Functions' `Error`). */
export type CrashError = 'Lambda.Unknown' | 'Sandbox.Timedout' | 'Runtime.ExitError' | 'Runtime.OutOfMemory';

interface Targeting {
  /** The invocations the fault applies to. */
  invocation: (invocation: InvocationInfo) => boolean;
  /** How many times the fault strikes in the whole execution. @default 1 */
  times?: number;
}

interface AtRequest {
  /** The requests counted towards `nth`. @default every request */
  request?: (request: RuntimeRequest) => boolean;
  /** Strike at the n-th matching request of the invocation. @default 1 */
  nth?: number;
}

/**
 * The invocation dies: the state machine sees `error` (default `Lambda.Unknown`, what AWS reports for a
 * crash or an out-of-memory kill); every later request of the invocation fails without reaching any
 * server, and a reply still on its way is lost. `when` says whether the striking request is applied
 * first (`after`: it reaches the server, the invocation dies before seeing the reply) or not
 * (`before`, the default).
 *
 * `deferWhileModelCalls` postpones the kill while the invocation has model requests in flight: their
 * replies still reach the handler, its new model requests fail before reaching the provider, and the
 * kill lands once the last reply is in, after the invocation's next AWS request is applied (where a
 * stage records the reply), or when the handler returns, whichever comes first. A real crash can lose a
 * reply the provider already billed, which nothing inside the function can count; deferring keeps that
 * loss out of a benchmark whose invariant is "every billed call is counted".
 */
export interface CrashFault extends Targeting, AtRequest {
  kind: 'crash';
  when?: 'before' | 'after';
  error?: CrashError;
  deferWhileModelCalls?: boolean;
}

/**
 * The state machine sees `States.Timeout` for the attempt at the striking request (after it is
 * applied), while the invocation keeps running and writing: the retry overlaps it.
 */
export interface ZombieTimeoutFault extends Targeting, AtRequest {
  kind: 'zombie-timeout';
}

/** The same input is handed to the function twice, overlapping (at-least-once delivery). */
export interface DuplicateFault extends Targeting {
  kind: 'duplicate';
}

export type Fault = CrashFault | ZombieTimeoutFault | DuplicateFault;

/**
 * "The write lands, the invocation dies before its next call": a crash after the n-th matching request
 * is applied, reported as the function's timeout (`Sandbox.Timedout`).
 */
export function timeoutAfterWrite(
  fault: Targeting & AtRequest,
): CrashFault & { when: 'after'; error: 'Sandbox.Timedout' } {
  return { ...fault, kind: 'crash', when: 'after', error: 'Sandbox.Timedout' };
}

/** The faults of one execution: which strike where, and how often each struck. */
export class FaultPlan {
  private readonly struck = new Map<Fault, number>();

  constructor(readonly faults: readonly Fault[] = []) {}

  /** The faults of `kind` that may still strike in `invocation`. */
  armed<K extends Fault['kind']>(kind: K, invocation: InvocationInfo): Extract<Fault, { kind: K }>[] {
    return this.faults.filter(
      (fault): fault is Extract<Fault, { kind: K }> =>
        fault.kind === kind && this.mayStrike(fault) && fault.invocation(invocation),
    );
  }

  /** True when `fault` has struck fewer than its `times`. */
  mayStrike(fault: Fault): boolean {
    return (this.struck.get(fault) ?? 0) < (fault.times ?? 1);
  }

  /** Records that `fault` struck (false, and nothing recorded, when it had used up its `times`). */
  strike(fault: Fault): boolean {
    if (!this.mayStrike(fault)) return false;
    this.struck.set(fault, (this.struck.get(fault) ?? 0) + 1);
    return true;
  }

  /** How many times each kind of fault struck (a `timeoutAfterWrite` crash counted apart). */
  counts(): Record<Fault['kind'] | 'timeout-after-write', number> {
    const counts = { crash: 0, 'timeout-after-write': 0, 'zombie-timeout': 0, duplicate: 0 };
    for (const [fault, n] of this.struck) {
      const afterWrite =
        fault.kind === 'crash' && fault.when === 'after' && fault.error === 'Sandbox.Timedout';
      counts[afterWrite ? 'timeout-after-write' : fault.kind] += n;
    }
    return counts;
  }
}
