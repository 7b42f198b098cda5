/**
 * `replay:<run-id>`: serves a recorded run's model replies back, matched by the hash of the prompt, so
 * the downstream stages can be re-run with other thresholds or filters at zero model cost. A prompt
 * with no recording fails clearly, unless a fallback model is given: `replay:<run-id>+<model id>`.
 */
import { ModelRequestFailed, NotFound } from '../errors.ts';
import { runPrefix } from '../keys.ts';
import { type CallRecord, fromJsonLines, promptHash } from '../model-calls.ts';
import type { ModelReply, ModelRequest, ObjectStore, TextModel } from '../ports.ts';
import { redactUrlCredentials } from '../urls.ts';

/** Splits `replay:<run-id>[+<fallback model id>]`. */
export function parseReplayId(id: string): { runId: string; fallback?: string } {
  const rest = id.slice('replay:'.length);
  const plus = rest.indexOf('+');
  const runId = plus < 0 ? rest : rest.slice(0, plus);
  if (!runId) {
    throw new ModelRequestFailed(
      `"${redactUrlCredentials(id)}" names no run: use replay:<run-id>[+<fallback model id>]`,
    );
  }
  return plus < 0 ? { runId } : { runId, fallback: rest.slice(plus + 1) };
}

export class ReplayModel implements TextModel {
  readonly id: string;
  /** Recordings per raw file group, loaded on first use (a Lambda loads only its stage's files). */
  private readonly loaded = new Map<string, Promise<Map<string, CallRecord[]>>>();

  constructor(
    private readonly runId: string,
    private readonly objects: ObjectStore,
    private readonly fallback?: TextModel,
  ) {
    this.id = `replay:${runId}${fallback ? `+${fallback.id}` : ''}`;
  }

  async generate(request: ModelRequest): Promise<ModelReply> {
    // Instruction calls are recorded by "Generate instructions"; classify and instance calls by the Map items.
    const group = request.stage === 'generate-instructions' ? 'generate-instructions' : 'generate-instances';
    let recordings = this.loaded.get(group);
    if (!recordings) {
      recordings = this.load(group);
      this.loaded.set(group, recordings);
    }
    const hash = promptHash(request);
    const record = (await recordings).get(hash)?.shift();
    if (record) {
      return {
        text: record.reply,
        finish: record.finish,
        // Nothing was spent: the tokens were paid for by the recorded run.
        usage: { inputTokens: 0, outputTokens: 0, estimated: false },
        latencyMs: 0,
        model: this.id,
      };
    }
    if (this.fallback) return this.fallback.generate(request);
    throw new ModelRequestFailed(
      `run ${this.runId} has no recorded reply for this ${request.stage} prompt (hash ${hash}); ` +
        `replay the same profile and seed, or give a fallback model: replay:${this.runId}+<model id>`,
    );
  }

  private async load(group: string): Promise<Map<string, CallRecord[]>> {
    const keys = (await this.objects.list(runPrefix(this.runId))).filter((key) =>
      key.split('/').at(-1)?.startsWith(group),
    );
    if (keys.length === 0 && !this.fallback) {
      throw new NotFound(
        `run ${this.runId} has no recorded ${group} calls in the bucket (${runPrefix(this.runId)})`,
      );
    }
    const byHash = new Map<string, CallRecord[]>();
    for (const key of keys) {
      if (!key.includes('/raw/')) continue;
      for (const record of fromJsonLines<CallRecord>(await this.objects.getText(key))) {
        const queue = byHash.get(record.promptHash) ?? [];
        queue.push(record);
        byHash.set(record.promptHash, queue);
      }
    }
    return byHash;
  }
}
