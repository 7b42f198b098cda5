/**
 * The shared runner of model calls. Stage cores build the request and parse the reply; they never see
 * a provider. The runner:
 * - records every billed call the moment its reply arrives (`PoolStore.putCall`, keyed by a call id),
 *   so usage and cost count calls of attempts that fail later;
 * - gives a retried or duplicated stage the recorded reply of the same logical call (same key, same
 *   prompt) instead of paying for it again;
 * - retries throttled (`ModelThrottled`) and transient (`ModelUnavailable`) failures inside the function,
 *   with exponential backoff and full jitter, under an adaptive concurrency limit (additive increase,
 *   multiplicative decrease on throttling), while the function has time left;
 * - lets a stage keep the calls that succeeded: a call still failing after its retries is lost and
 *   counted, and the stage gives up (throws, for the state machine's Retry) only when more than
 *   `MAX_LOST_SHARE` of its calls are lost. Permanent errors (`ModelRequestFailed`) fail at once.
 * It also keeps the raw request and reply of each call for the run's record in S3 (JSON Lines), which
 * `replay:` models and `estimate` read.
 */
import { createHash, randomUUID } from 'node:crypto';
import { backOff } from 'exponential-backoff';
import pLimit, { type LimitFunction } from 'p-limit';
import {
  ConfigurationError,
  ModelThrottled,
  ModelUnavailable,
  NotRecorded,
  type SelfInstructError,
} from './errors.ts';
import { toJsonLines } from './json-lines.ts';
import type {
  EMBEDDING_STAGE,
  ModelReply,
  ModelRequest,
  PoolStore,
  SAFETY_STAGE,
  StoredCall,
  TextModel,
} from './ports.ts';
import type { Usage, UsageByStage } from './schemas.ts';

/** One raw call as stored in `runs/<run>/iteration-<n>/raw/<stage>.jsonl`. */
export interface CallRecord {
  stage: string;
  promptHash: string;
  model: string;
  parameters: Pick<ModelRequest, 'kind' | 'temperature' | 'topP' | 'maxTokens' | 'stop' | 'json'>;
  system?: string;
  prompt: string;
  reply: string;
  finish: ModelReply['finish'];
  usage: ModelReply['usage'];
  latencyMs: number;
  /** The logical call (`<iteration>#<scope>#<key>`), when the stage named it. */
  callKey?: string;
  /** The reply was recorded by an earlier attempt and served again, not paid for twice. */
  reused?: boolean;
}

export const emptyUsage = (): Usage => ({ calls: 0, inputTokens: 0, outputTokens: 0, estimated: false });

/** Adds `b` into `a`, in place, and returns `a`. */
export function addUsage(a: Usage, b: Usage): Usage {
  a.calls += b.calls;
  a.inputTokens += b.inputTokens;
  a.outputTokens += b.outputTokens;
  a.estimated ||= b.estimated;
  return a;
}

/** Adds every stage of `b` into `a`, in place, and returns `a`. */
export function addUsageByStage(a: UsageByStage, b: UsageByStage): UsageByStage {
  for (const [stage, usage] of Object.entries(b)) a[stage] = addUsage(a[stage] ?? emptyUsage(), usage);
  return a;
}

/** The usage of all stages together. */
export const totalUsage = (byStage: UsageByStage): Usage =>
  Object.values(byStage).reduce((sum, usage) => addUsage(sum, usage), emptyUsage());

/** Usage per stage of recorded calls: what they were billed. */
export function usageOfCalls(calls: readonly StoredCall[]): UsageByStage {
  const byStage: UsageByStage = {};
  for (const call of calls) {
    byStage[call.stage] = addUsage(byStage[call.stage] ?? emptyUsage(), {
      calls: 1,
      inputTokens: call.inputTokens,
      outputTokens: call.outputTokens,
      estimated: call.estimated,
    });
  }
  return byStage;
}

/** Usage per stage as the run record's flat counters: `<stage>:calls`, `<stage>:inputTokens`, `<stage>:outputTokens`. */
export const stageUsageCounters = (byStage: UsageByStage): Record<string, number> =>
  Object.fromEntries(
    Object.entries(byStage).flatMap(([stage, usage]) => [
      [`${stage}:calls`, usage.calls],
      [`${stage}:inputTokens`, usage.inputTokens],
      [`${stage}:outputTokens`, usage.outputTokens],
    ]),
  );

/** The hash a call's prompt is recorded and replayed under. */
export const promptHash = ({ system, prompt }: Pick<ModelRequest, 'system' | 'prompt'>) =>
  createHash('sha256')
    .update(`${system ?? ''}\u0000${prompt}`)
    .digest('hex')
    .slice(0, 16);

/** A rendered request with the run's overrides of temperature and top-p: what goes to the model. */
export const withSampling = (
  rendered: ModelRequest,
  sampling: { temperature?: number; topP?: number } | undefined,
): ModelRequest => ({
  ...rendered,
  temperature: sampling?.temperature ?? rendered.temperature,
  topP: sampling?.topP ?? rendered.topP,
});

/** How the runner retries a throttled or transient call. */
export interface RetryPolicy {
  /** Attempts of one call, the first included. */
  attempts: number;
  /** The first backoff's upper bound; each next one doubles, up to `maxDelayMs` (full jitter below it). */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** 8 attempts, waits drawn below 0.5, 1, 2, 4, 8, 16, 20 s: about 50 s at most, 25 s on average. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 500, maxDelayMs: 20_000 };

/**
 * The retry policy of the functions: `DEFAULT_RETRY`, with the waits scaled down by
 * `SELFINSTRUCT_RETRY_BASE_MS` / `SELFINSTRUCT_RETRY_MAX_MS` when set (tests and fault benchmarks on
 * the local stack, which would otherwise spend most of their time waiting).
 */
export function retryPolicy(env: NodeJS.ProcessEnv = process.env): RetryPolicy {
  const ms = (name: string, fallback: number) => {
    const value = env[name];
    if (value === undefined || value === '') return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0)
      throw new ConfigurationError(`${name} must be a number of milliseconds, not "${value}"`);
    return n;
  };
  return {
    attempts: DEFAULT_RETRY.attempts,
    baseDelayMs: ms('SELFINSTRUCT_RETRY_BASE_MS', DEFAULT_RETRY.baseDelayMs),
    maxDelayMs: ms('SELFINSTRUCT_RETRY_MAX_MS', DEFAULT_RETRY.maxDelayMs),
  };
}

/**
 * The share of a stage's calls that may be lost (still failing after their retries) before the stage
 * gives up and throws for the state machine's Retry. At or below it, the stage keeps what it has and
 * counts the losses (`lost` on the run).
 */
export const MAX_LOST_SHARE = 0.1;

/** No new attempt (or wait) starts with less than this much of the function's time left. */
export const TIME_RESERVE_MS = 30_000;

/** Replies longer than this are not kept in the call record (a DynamoDB item holds 400 KB). */
export const MAX_STORED_REPLY_CHARS = 100_000;

const retryable = (error: unknown) => error instanceof ModelThrottled || error instanceof ModelUnavailable;

const unbounded = () => Number.POSITIVE_INFINITY;

/**
 * Runs `attempt` with the runner's backoff: a throttled (`ModelThrottled`) or transient
 * (`ModelUnavailable`) failure is tried again after a wait drawn with full jitter, while the function has
 * time for the longest wait and one more attempt (`timeLeft`, in milliseconds).
 */
export function withRetries<T>(
  attempt: () => Promise<T>,
  retry: RetryPolicy,
  timeLeft: () => number = unbounded,
): Promise<T> {
  return backOff(attempt, {
    numOfAttempts: retry.attempts,
    startingDelay: retry.baseDelayMs,
    maxDelay: retry.maxDelayMs,
    jitter: 'full',
    retry: (error) => retryable(error) && timeLeft() >= TIME_RESERVE_MS + retry.maxDelayMs,
  });
}

/**
 * A concurrency limit that adapts as production clients do (AIMD): it starts at the ceiling, halves on
 * a throttled call (once per window: the calls that started before a decrease don't decrease it
 * again) and grows by one per `limit` successful calls, never above the ceiling.
 */
export class AdaptiveLimit {
  private limit: number;
  private window = 0;
  private readonly queue: LimitFunction;

  constructor(readonly ceiling: number) {
    this.limit = ceiling;
    this.queue = pLimit(ceiling);
  }

  /** Calls at once now. */
  get concurrency(): number {
    return this.queue.concurrency;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue(async () => {
      const window = this.window;
      try {
        const result = await fn();
        this.set(this.limit + 1 / this.limit);
        return result;
      } catch (error) {
        if (error instanceof ModelThrottled && window === this.window) {
          this.window++;
          this.set(this.limit / 2);
        }
        throw error;
      }
    });
  }

  private set(limit: number): void {
    this.limit = Math.min(this.ceiling, Math.max(1, limit));
    this.queue.concurrency = Math.floor(this.limit);
  }
}

/** Where a runner records its calls: a run's iteration and the part of a stage that makes them. */
export interface CallLedger {
  pool: PoolStore;
  runId: string;
  iteration: number;
  /** `INSTRUCTIONS_SCOPE`, or `chunk-<n>` for a Map item. */
  scope: string;
}

/** The ledger scope of an iteration's instruction-generation calls (a Map item's is `chunk-<n>`). */
export const INSTRUCTIONS_SCOPE = 'instructions';

/** What the call keys of one ledger scope start with: `<iteration>#<scope>#`. */
export const callKeyPrefix = ({ iteration, scope }: Pick<CallLedger, 'iteration' | 'scope'>): string =>
  `${iteration}#${scope}#`;

export interface ModelCallsOptions {
  /** The run's overrides of the profiles' temperature and top-p, applied to every call. */
  sampling?: { temperature?: number; topP?: number };
  /** Where billed calls are recorded and earlier replies found; none: nothing is recorded (tests, tools). */
  ledger?: CallLedger;
  /** The ceiling of calls at once (run input `callConcurrency`). @default 8 */
  concurrency?: number;
  /** Another runner's limit to share, so that two runners of one function stay under one ceiling. */
  limit?: AdaptiveLimit;
  retry?: RetryPolicy;
  /** Milliseconds the function has left (Lambda's `getRemainingTimeInMillis`). @default unbounded */
  remainingMs?: () => number;
}

/** Calls a model for one stage invocation; see the module comment. */
export class ModelCalls {
  /** Every call answered, made or reused, for the raw log. */
  readonly records: CallRecord[] = [];
  /** Token usage this invocation was billed, per pipeline step (reused replies cost nothing). */
  readonly usage: UsageByStage = {};
  /** Logical calls asked for, and of them lost (still failing after their retries). */
  requested = 0;
  lost = 0;
  /** Keys (as the stage named them) of the calls a `replay:` model had no recording for. */
  readonly notRecorded = new Set<string>();
  private lastLoss: Error | undefined;
  private failed: unknown;
  private recorded: Promise<Map<string, StoredCall>> | undefined;
  readonly limit: AdaptiveLimit;
  private readonly retry: RetryPolicy;

  constructor(
    private readonly model: TextModel,
    private readonly options: ModelCallsOptions = {},
  ) {
    this.limit = options.limit ?? new AdaptiveLimit(options.concurrency ?? 8);
    this.retry = options.retry ?? retryPolicy();
  }

  /**
   * The reply to `rendered`, or `undefined` when the call is lost (throttled or unavailable through all
   * its retries, or out of time, or a replay has no recording for it: `notRecorded` then holds its key).
   * `key` names the logical call within the ledger's scope (e.g.
   * `prompt-3`, `<task id>/classify`): a recorded reply under the same key and prompt is served again.
   * A permanent error is thrown, and every call after it throws it too.
   */
  async call(rendered: ModelRequest, key?: string): Promise<ModelReply | undefined> {
    const request = withSampling(rendered, this.options.sampling);
    this.requested++;
    const hash = promptHash(request);
    const callKey = key === undefined || !this.options.ledger ? undefined : this.callKey(key);
    const earlier = callKey === undefined ? undefined : (await this.loadRecorded()).get(callKey);
    if (earlier?.promptHash === hash && earlier.reply !== undefined) {
      const reply: ModelReply = {
        text: earlier.reply,
        finish: earlier.finish,
        usage: {
          inputTokens: earlier.inputTokens,
          outputTokens: earlier.outputTokens,
          estimated: earlier.estimated,
        },
        latencyMs: earlier.latencyMs,
        model: earlier.model,
      };
      this.keep(request, hash, reply, callKey, true);
      return reply;
    }

    let reply: ModelReply;
    try {
      reply = await withRetries(
        () => this.attempt(request, callKey),
        this.retry,
        () => this.timeLeft(),
      );
    } catch (error) {
      if (error instanceof NotRecorded && key !== undefined) {
        this.notRecorded.add(key);
        return undefined;
      }
      if (!retryable(error)) throw error;
      this.lost++;
      this.lastLoss = error as Error;
      return undefined;
    }
    if (callKey !== undefined && this.options.ledger) {
      const { pool, runId, iteration } = this.options.ledger;
      await pool.putCall(runId, {
        callKey,
        callId: randomUUID(),
        stage: request.stage,
        iteration,
        promptHash: hash,
        model: reply.model,
        reply: reply.text.length <= MAX_STORED_REPLY_CHARS ? reply.text : undefined,
        finish: reply.finish,
        inputTokens: reply.usage.inputTokens,
        outputTokens: reply.usage.outputTokens,
        estimated: reply.usage.estimated,
        latencyMs: reply.latencyMs,
        at: new Date().toISOString(),
      });
    }
    this.usage[request.stage] = addUsage(this.usage[request.stage] ?? emptyUsage(), {
      calls: 1,
      inputTokens: reply.usage.inputTokens,
      outputTokens: reply.usage.outputTokens,
      estimated: reply.usage.estimated,
    });
    this.keep(request, hash, reply, callKey, false);
    return reply;
  }

  /**
   * Throws, for the state machine's Retry, when more than `MAX_LOST_SHARE` of the calls asked for were
   * lost: the last loss's error class (`ModelThrottled` or `ModelUnavailable`) with the count.
   */
  checkLosses(): void {
    if (this.lost === 0 || this.lost <= MAX_LOST_SHARE * this.requested) return;
    const last = this.lastLoss as SelfInstructError;
    const Named = last instanceof ModelThrottled ? ModelThrottled : ModelUnavailable;
    throw new Named(
      `${this.lost} of ${this.requested} model calls still failed after ${this.retry.attempts} attempts each ` +
        `(a stage may lose ${MAX_LOST_SHARE * 100}%): ${last.message}`,
      { cause: last },
    );
  }

  /** The records as JSON Lines. */
  toJsonLines(): string {
    return toJsonLines(this.records);
  }

  private callKey(key: string): string {
    return `${callKeyPrefix(this.options.ledger as CallLedger)}${key}`;
  }

  private loadRecorded(): Promise<Map<string, StoredCall>> {
    if (!this.recorded) {
      const ledger = this.options.ledger as CallLedger;
      this.recorded = ledger.pool.listCalls(ledger.runId, callKeyPrefix(ledger)).then((calls) => {
        const byKey = new Map<string, StoredCall>();
        for (const call of calls)
          if (call.reply !== undefined && !byKey.has(call.callKey)) byKey.set(call.callKey, call);
        return byKey;
      });
    }
    return this.recorded;
  }

  private timeLeft(): number {
    return (this.options.remainingMs ?? unbounded)();
  }

  /** One attempt, under the adaptive limit; none after a permanent error or without time left. */
  private attempt(request: ModelRequest, callKey: string | undefined): Promise<ModelReply> {
    return this.limit.run(async () => {
      if (this.failed) throw this.failed;
      if (this.timeLeft() < TIME_RESERVE_MS) {
        throw new ModelUnavailable('no time left in this function for another model call');
      }
      try {
        return await this.model.generate(request, { callKey });
      } catch (error) {
        // Permanent: no call starts after it, queued ones included (a call with no recording is not).
        if (!retryable(error) && !(error instanceof NotRecorded)) this.failed ??= error;
        throw error;
      }
    });
  }

  private keep(
    request: ModelRequest,
    hash: string,
    reply: ModelReply,
    callKey: string | undefined,
    reused: boolean,
  ) {
    const { stage, kind, temperature, topP, maxTokens, stop, json, system, prompt } = request;
    this.records.push({
      stage,
      promptHash: hash,
      model: reply.model,
      parameters: { kind, temperature, topP, maxTokens, stop, json },
      system,
      prompt,
      reply: reply.text,
      finish: reply.finish,
      usage: reply.usage,
      latencyMs: reply.latencyMs,
      callKey,
      ...(reused ? { reused } : {}),
    });
  }
}

/** What the ledger records of a billed call that is not a text-model call. */
export interface ServiceBill {
  /** The pipeline step it is billed to. */
  stage: typeof EMBEDDING_STAGE | typeof SAFETY_STAGE;
  promptHash: string;
  /** The model or service id the price table prices it under. */
  model: string;
  /** Billed units (tokens, or a guardrail's text units). */
  inputTokens: number;
  estimated: boolean;
}

export interface ServiceCallsOptions {
  /** Where billed calls are recorded; none: nothing is recorded (tests, tools). */
  ledger?: CallLedger;
  /** The ceiling of calls at once. @default 8 */
  concurrency?: number;
  retry?: RetryPolicy;
  /** Milliseconds the function has left. @default unbounded */
  remainingMs?: () => number;
}

/**
 * The runner of billed calls to services other than text models (embeddings, guardrail screens), with
 * `ModelCalls`' adaptive limit, backoff and time reserve. A call still failing after its retries fails the
 * stage with its error, for the state machine's Retry: these calls gate what enters the pool, so none may
 * be lost. Each billed call is recorded in the run's ledger the moment its reply arrives, under
 * `<iteration>#<scope>#<kind>-<n>`, and added to `usage`. Replies are not kept (a batch of vectors is
 * megabytes), so a retried stage pays for its calls again, and counts them again.
 */
export class ServiceCalls {
  /** Usage billed by this invocation's calls. */
  readonly usage: Usage = emptyUsage();
  private readonly limit: AdaptiveLimit;
  private readonly retry: RetryPolicy;
  private calls = 0;

  /** `kind` names the calls: in their ledger keys and in errors. */
  constructor(
    private readonly kind: string,
    private readonly options: ServiceCallsOptions = {},
  ) {
    this.limit = new AdaptiveLimit(options.concurrency ?? 8);
    this.retry = options.retry ?? retryPolicy();
  }

  /** Makes one call; `bill` says what its reply was billed, or undefined when it was free. */
  async call<T>(attempt: () => Promise<T>, bill: (reply: T) => ServiceBill | undefined): Promise<T> {
    const timeLeft = this.options.remainingMs ?? unbounded;
    const started = Date.now();
    const reply = await withRetries(
      () =>
        this.limit.run(() => {
          if (timeLeft() < TIME_RESERVE_MS) {
            throw new ModelUnavailable(`no time left in this function for another ${this.kind} call`);
          }
          return attempt();
        }),
      this.retry,
      timeLeft,
    );
    const number = this.calls++;
    const billed = bill(reply);
    if (!billed) return reply;
    if (this.options.ledger) {
      const { pool, runId, iteration, scope } = this.options.ledger;
      await pool.putCall(runId, {
        ...billed,
        callKey: `${iteration}#${scope}#${this.kind}-${number}`,
        callId: randomUUID(),
        iteration,
        finish: 'stop',
        outputTokens: 0,
        latencyMs: Date.now() - started,
        at: new Date().toISOString(),
      });
    }
    addUsage(this.usage, {
      calls: 1,
      inputTokens: billed.inputTokens,
      outputTokens: 0,
      estimated: billed.estimated,
    });
    return reply;
  }
}
