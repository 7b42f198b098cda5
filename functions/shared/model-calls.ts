/**
 * The shared runner of model calls: it makes the call, keeps the raw request and reply for the
 * run's record (S3, JSON Lines) and sums token usage. Stage cores build the request and parse the
 * reply; they never see a provider.
 */
import { createHash } from 'node:crypto';
import type { ModelReply, ModelRequest, TextModel } from './ports.ts';
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

/** The hash a call's prompt is recorded and replayed under. */
export const promptHash = ({ system, prompt }: Pick<ModelRequest, 'system' | 'prompt'>) =>
  createHash('sha256')
    .update(`${system ?? ''}\u0000${prompt}`)
    .digest('hex')
    .slice(0, 16);

/** Calls a model and records every call. */
export class ModelCalls {
  readonly records: CallRecord[] = [];
  /** Token usage per pipeline step (`generate-instructions`, `classify`, `generate-instances`). */
  readonly usage: UsageByStage = {};

  /**
   * `sampling`: the run's overrides of the profiles' temperature and top-p (run input `temperature`,
   * `topP`), applied to every call here so no stage has to remember them.
   */
  constructor(
    private readonly model: TextModel,
    private readonly sampling: { temperature?: number; topP?: number } = {},
  ) {}

  async call(rendered: ModelRequest): Promise<ModelReply> {
    const request = {
      ...rendered,
      temperature: this.sampling.temperature ?? rendered.temperature,
      topP: this.sampling.topP ?? rendered.topP,
    };
    const reply = await this.model.generate(request);
    const { stage, kind, temperature, topP, maxTokens, stop, json, system, prompt } = request;
    this.records.push({
      stage,
      promptHash: promptHash(request),
      model: reply.model,
      parameters: { kind, temperature, topP, maxTokens, stop, json },
      system,
      prompt,
      reply: reply.text,
      finish: reply.finish,
      usage: reply.usage,
      latencyMs: reply.latencyMs,
    });
    this.usage[stage] = addUsage(this.usage[stage] ?? emptyUsage(), {
      calls: 1,
      inputTokens: reply.usage.inputTokens,
      outputTokens: reply.usage.outputTokens,
      estimated: reply.usage.estimated,
    });
    return reply;
  }

  /** The records as JSON Lines. */
  toJsonLines(): string {
    return toJsonLines(this.records);
  }
}

/** Values as JSON Lines (one JSON document per line, trailing newline). */
export function toJsonLines(values: readonly unknown[]): string {
  return values.map((value) => JSON.stringify(value)).join('\n') + (values.length > 0 ? '\n' : '');
}

/** Parses JSON Lines written by this project (trusted: no per-line validation). */
export function fromJsonLines<T>(text: string | undefined): T[] {
  if (!text) return [];
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}
