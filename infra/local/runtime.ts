/**
 * The local Lambda runtime: each handler invocation runs inside an `AsyncLocalStorage` context that
 * names its function (and so its role), and every SDK client of the process (the handlers', the
 * CLI's, the esbuild bundles' in `--bundled` mode) is configured through `awsClientConfig`, for which
 * this module registers the local overrides:
 *
 * - the S3, DynamoDB and Step Functions clients get the local servers' endpoints, their dummy
 *   credentials and region; Bedrock, Secrets Manager and CloudFormation keep the default credential
 *   chain (environment, profile, SSO) and the user's region;
 * - every client's request handler is wrapped: a request made inside an invocation is checked against
 *   that function's role (`iam.ts`), then subject to the execution's faults (`faults.ts`); a request of
 *   a dead invocation (crashed, timed out) fails without reaching any server;
 * - the model providers' HTTP clients get a `fetch` with the same death and fault semantics.
 *
 * Requests made outside any invocation (the CLI, tests, the stack's own setup) are an administrator's:
 * not checked, never faulted.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { setMaxListeners } from 'node:events';
import { NodeHttp2Handler, NodeHttpHandler } from '@smithy/node-http-handler';
import {
  type AwsService,
  type ClientConfig,
  type LocalOverrides,
  registerLocalOverrides,
} from '../../functions/shared/config.ts';
import type { CrashError, Fault, FaultPlan, InvocationInfo, RuntimeRequest } from './faults.ts';
import {
  type AwsRequest,
  type Denial,
  denialResponse,
  describeRequest,
  type IamEvaluator,
  type Place,
  type Principal,
  type SdkHttpRequest,
  type SdkHttpResponse,
} from './iam.ts';

/** The error a function reports to the state machine, with Lambda's cause (JSON, as Lambda writes it). */
export class LambdaError extends Error {
  constructor(name: string, message: string) {
    super(JSON.stringify({ errorType: name, errorMessage: message, trace: [] }));
    this.name = name;
  }
}

/** A promise with its resolvers (`Promise.withResolvers`, Node 22+). */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A request of a dead invocation: it never reaches a server. */
class InvocationDead extends Error {
  override name = 'InvocationDead';
}

/** One invocation of a function: its identity, its faults, and whether it is still alive. */
export class Invocation {
  readonly requestId = crypto.randomUUID();
  /** Why the invocation died (it makes no more requests), once it has. */
  death?: { error: CrashError; message: string };
  /** Model requests sent and not yet answered. */
  private modelCalls = 0;
  /** A kill deferred while model calls are in flight (see `CrashFault.deferWhileModelCalls`). */
  private pendingKill?: { error: CrashError; message: string };
  /** The last model reply arrived with a kill pending: it lands after the next AWS request is applied. */
  private killAfterNextRequest = false;
  private readonly counts = new Map<Fault, number>();
  private readonly dying = (() => {
    const controller = new AbortController();
    // Every request of the invocation listens to it.
    setMaxListeners(0, controller.signal);
    return controller;
  })();
  private readonly outcome = deferred<unknown>();
  private readonly finished = deferred<void>();

  constructor(
    readonly info: InvocationInfo,
    readonly principal: Principal | undefined,
    private readonly faults: FaultPlan,
  ) {
    // The state machine may have been answered already (a zombie): nobody else awaits these.
    this.outcome.promise.catch(() => undefined);
  }

  /** What the state machine sees: the handler's result, or the error the invocation ended with. */
  get reported(): Promise<unknown> {
    return this.outcome.promise;
  }

  /** Resolves when the handler has returned or thrown, or the invocation died. */
  get settled(): Promise<void> {
    return this.finished.promise;
  }

  /** Runs `handler` in this invocation's context. */
  start(handler: () => Promise<unknown>): this {
    const zombie = this.faults
      .armed('zombie-timeout', this.info)
      .find((fault) => fault.request === undefined);
    invocations.run(this, () => {
      handler()
        .then(
          (value) => {
            // A deferred kill that has not landed yet lands before the result is returned.
            if (this.pendingKill) this.kill(this.pendingKill.error, this.pendingKill.message);
            this.outcome.resolve(value);
          },
          (error: unknown) =>
            this.outcome.reject(
              new LambdaError((error as Error)?.name ?? 'Error', String((error as Error)?.message ?? error)),
            ),
        )
        .finally(() => this.finished.resolve());
    });
    if (zombie && this.faults.strike(zombie)) this.timeOutForTheStateMachine();
    return this;
  }

  /** The invocation dies now: the state machine sees `error`; its requests fail from now on. */
  kill(error: CrashError, message: string): void {
    if (this.death) return;
    this.death = { error, message };
    this.dying.abort(new InvocationDead(message));
    this.outcome.reject(new LambdaError(error, message));
    this.finished.resolve();
  }

  /** The state machine stops waiting (`States.Timeout`) while the invocation goes on. */
  timeOutForTheStateMachine(): void {
    const error = new Error('Task timed out (injected: the invocation keeps running)');
    error.name = 'States.Timeout';
    this.outcome.reject(error);
  }

  /** Aborted when the invocation dies: its requests in flight are cut. */
  get signal(): AbortSignal {
    return this.dying.signal;
  }

  private assertAlive(): void {
    if (this.death)
      throw new InvocationDead(`the invocation ${this.requestId} is dead (${this.death.error})`);
  }

  /** The faults that strike at `request`, `phase` `before` or `after` it is applied. */
  private strikes(request: RuntimeRequest, phase: 'before' | 'after', counted: boolean): void {
    for (const kind of ['crash', 'zombie-timeout'] as const) {
      for (const fault of this.faults.armed(kind, this.info)) {
        if (fault.request && !fault.request(request)) continue;
        if (phase === 'before' && counted) this.counts.set(fault, (this.counts.get(fault) ?? 0) + 1);
        if (this.counts.get(fault) !== (fault.nth ?? 1)) continue;
        const when = fault.kind === 'crash' ? (fault.when ?? 'before') : 'after';
        if (when !== phase || !this.faults.strike(fault)) continue;
        if (fault.kind === 'zombie-timeout') {
          this.timeOutForTheStateMachine();
          continue;
        }
        const error = fault.error ?? 'Lambda.Unknown';
        const message =
          error === 'Sandbox.Timedout'
            ? `RequestId: ${this.requestId} Error: Task timed out (injected after ${request.operation})`
            : `RequestId: ${this.requestId} Error: Runtime exited without providing a reason (injected ${when} ${request.operation})`;
        if (fault.deferWhileModelCalls && this.modelCalls > 0) this.pendingKill = { error, message };
        else this.kill(error, message);
      }
    }
  }

  /** Sends `request` through this invocation: death, faults and model-call accounting around `send`. */
  async send<T>(request: RuntimeRequest, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.assertAlive();
    const model = request.service === 'model' || request.service === 'bedrock-runtime';
    if (model && this.pendingKill) {
      // The process is about to die: a new model call would be billed and lost.
      throw new InvocationDead(`the invocation ${this.requestId} is dying`);
    }
    this.strikes(request, 'before', true);
    this.assertAlive();
    if (model) this.modelCalls++;
    let result: T;
    try {
      result = await send(this.signal);
    } finally {
      if (model) this.modelCalls--;
    }
    // Died while the request was in flight: the request may have been applied, its reply is lost.
    this.assertAlive();
    if (this.pendingKill) {
      // The last reply still reaches the handler, which records it with its next request; then it dies.
      if (!model && this.killAfterNextRequest) this.kill(this.pendingKill.error, this.pendingKill.message);
      else if (this.modelCalls === 0) this.killAfterNextRequest = true;
      this.assertAlive();
    }
    this.strikes(request, 'after', false);
    this.assertAlive();
    return result;
  }
}

/** The invocation the current code runs in, if any. */
export const invocations = new AsyncLocalStorage<Invocation>();

/** What the local stack tells the runtime about itself. */
export interface RuntimeSettings {
  place: Place;
  /** Endpoints of the local servers: clients of these services are pointed at them. */
  endpoints: Partial<Record<AwsService, string>>;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** The local servers' region (the SDK signs for it; the servers ignore it). */
  region: string;
  /** IAM enforcement, or `undefined` when turned off. */
  iam?: IamEvaluator;
}

let settings: RuntimeSettings | undefined;

/** Updates what the registered overrides use (clients built earlier read it on every request). */
export function configureRuntime(update: Partial<RuntimeSettings> & Pick<RuntimeSettings, 'place'>): void {
  settings = {
    endpoints: {},
    credentials: { accessKeyId: '', secretAccessKey: '' },
    region: '',
    ...settings,
    ...update,
  };
}

/**
 * Sets the endpoint of one local service (the Step Functions endpoint starts after the stack's
 * servers); `url` undefined removes it, only if it is still `current` when that is given (another
 * stack of the process may have set its own since).
 */
export function setLocalEndpoint(service: AwsService, url: string | undefined, current?: string): void {
  if (!settings) return;
  if (url !== undefined) settings.endpoints[service] = url;
  else if (current === undefined || settings.endpoints[service] === current)
    delete settings.endpoints[service];
}

type SdkHandler = {
  handle(request: SdkHttpRequest, options?: { abortSignal?: AbortSignal }): Promise<{ response: unknown }>;
  metadata?: unknown;
  updateHttpClientConfig?(key: never, value: never): void;
  httpHandlerConfigs?(): unknown;
  destroy?(): void;
};

/** The S3 `GetObject`/`HeadObject` of a missing key answers 403 to a principal that may not list the bucket. */
async function hideMissingKey(
  request: AwsRequest,
  principal: Principal,
  iam: IamEvaluator,
): Promise<Denial | undefined> {
  if (request.service !== 's3' || (request.operation !== 'GetObject' && request.operation !== 'HeadObject')) {
    return undefined;
  }
  const bucket = request.authorizations[0]?.resource.split('/')[0] ?? '';
  return iam.check(principal, [{ action: 's3:ListBucket', resource: bucket }]);
}

/**
 * A request handler that routes every request of an invocation through it (IAM, faults, death) before
 * the real handler (`inner`, built from the client's own handler settings).
 */
class GuardedHandler implements SdkHandler {
  private readonly inner: SdkHandler;

  constructor(
    private readonly service: AwsService,
    own: unknown,
  ) {
    const options = (own ?? {}) as Record<string, unknown>;
    this.inner =
      typeof options.handle === 'function'
        ? (own as SdkHandler)
        : service === 'bedrock-runtime'
          ? (new NodeHttp2Handler(options) as unknown as SdkHandler)
          : (new NodeHttpHandler(options) as unknown as SdkHandler);
  }

  get metadata() {
    return this.inner.metadata;
  }

  updateHttpClientConfig(key: never, value: never): void {
    this.inner.updateHttpClientConfig?.(key, value);
  }

  httpHandlerConfigs() {
    return this.inner.httpHandlerConfigs?.() ?? {};
  }

  destroy(): void {
    this.inner.destroy?.();
  }

  async handle(request: SdkHttpRequest, options: { abortSignal?: AbortSignal } = {}) {
    const invocation = invocations.getStore();
    if (!invocation || !settings) return this.inner.handle(request, options);
    const described = describeRequest(this.service, request, settings.place);
    const { iam } = settings;
    const { principal } = invocation;
    if (iam && principal) {
      const denial = await iam.check(principal, described.authorizations);
      if (denial) return { response: denialResponse(this.service, denial) };
    }
    return invocation.send(described, async (signal) => {
      const result = await this.inner.handle(request, {
        ...options,
        abortSignal: options.abortSignal ? AbortSignal.any([options.abortSignal, signal]) : signal,
      });
      const response = result.response as SdkHttpResponse;
      if (iam && principal && response.statusCode === 404) {
        const denial = await hideMissingKey(described, principal, iam);
        if (denial) return { response: denialResponse(this.service, denial) };
      }
      return result;
    });
  }
}

/** `fetch` for model providers: inside an invocation, death and faults apply (IAM does not: not AWS). */
const guardedFetch: typeof fetch = async (input, init) => {
  const invocation = invocations.getStore();
  if (!invocation) return fetch(input, init);
  const url = new URL(input instanceof Request ? input.url : String(input));
  const request: RuntimeRequest = {
    service: 'model',
    operation: `${init?.method ?? 'GET'} ${url.pathname}`,
    authorizations: [],
  };
  return invocation.send(request, async (signal) => {
    const response = await fetch(input, {
      ...init,
      signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal,
    });
    // The reply counts as received once its body is read: a death before that loses it.
    const body = await response.arrayBuffer();
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  });
};

const LOCAL_SERVICES: readonly AwsService[] = ['s3', 'dynamodb', 'sfn'];

/** The overrides every client of the process gets while a local stack runs (see the module comment). */
const overrides: LocalOverrides = {
  clientConfig(service: AwsService, own: ClientConfig): ClientConfig {
    const endpoint = settings?.endpoints[service];
    const local =
      settings && endpoint && LOCAL_SERVICES.includes(service)
        ? {
            endpoint,
            region: settings.region,
            credentials: settings.credentials,
            ...(service === 's3' ? { forcePathStyle: true } : {}),
          }
        : {};
    return { ...own, ...local, requestHandler: new GuardedHandler(service, own.requestHandler) };
  },
  fetch: guardedFetch,
};

/** Registers the local overrides (idempotent): clients built from now on reach the local runtime. */
export function registerRuntime(): void {
  registerLocalOverrides(overrides);
}
