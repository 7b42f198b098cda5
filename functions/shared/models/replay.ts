/**
 * `replay:<run-id>`: serves a recorded run's model replies back from its call ledger (the per-call
 * records every model-calling stage writes to the pool table as each reply arrives, so a run that died
 * is replayable too), so the downstream stages can be re-run with other thresholds or filters at zero
 * model cost.
 *
 * A call is matched by its logical key, which does not depend on what the pool holds:
 * - an instruction-generation call by its iteration and position (`<iteration>#instructions#prompt-<k>`):
 *   the replay re-gates the very candidates the recorded run generated, even where its prompt differs
 *   (after a different gate, the pool it samples demonstrations from differs);
 * - a classification or instance call by its task and round (`<task id>/instances-<round>`, the task id
 *   being a hash of the instruction), and only when the prompt is the same (same profile, instruction).
 *
 * A call with no recording goes to the fallback model, `replay:<run-id>+<model id>`; without one it
 * throws `NotRecorded`, which the stage counts (an instruction prompt the recorded run never made; a task
 * the recorded run never accepted, rejected as `not-recorded`) rather than failing the run.
 */
import { ModelRequestFailed, NotRecorded } from '../errors.ts';
import { callKeyPrefix, INSTRUCTIONS_SCOPE, promptHash } from '../model-calls.ts';
import type { CallContext, ModelReply, ModelRequest, PoolStore, StoredCall, TextModel } from '../ports.ts';
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

/** The key a recorded call is matched by (see the module comment). */
function matchKey(callKey: string, stage: string): string {
  if (stage === 'generate-instructions') return callKey;
  // `<iteration>#<scope>#<task id>/<call>`: the task's call, whichever iteration and chunk made it.
  return callKey.split('#').slice(2).join('#');
}

export class ReplayModel implements TextModel {
  readonly id: string;
  /** The recorded calls with a reply, by match key; loaded once per function instance. */
  private recorded: Promise<Map<string, StoredCall>> | undefined;

  constructor(
    private readonly runId: string,
    private readonly pool: PoolStore,
    private readonly fallback?: TextModel,
  ) {
    this.id = `replay:${runId}${fallback ? `+${fallback.id}` : ''}`;
  }

  async generate(request: ModelRequest, context: CallContext = {}): Promise<ModelReply> {
    const record =
      context.callKey === undefined
        ? undefined
        : (await this.load()).get(matchKey(context.callKey, request.stage));
    const served =
      record?.reply !== undefined &&
      record.stage === request.stage &&
      (request.stage === 'generate-instructions' || record.promptHash === promptHash(request));
    if (served) {
      return {
        text: record.reply as string,
        finish: record.finish,
        // Nothing was spent: the tokens were paid for by the recorded run.
        usage: { inputTokens: 0, outputTokens: 0, estimated: false },
        latencyMs: 0,
        model: this.id,
      };
    }
    if (this.fallback) return this.fallback.generate(request, context);
    throw new NotRecorded(
      `run ${this.runId} has no recorded reply for this ${request.stage} call (${context.callKey ?? 'unnamed'}); ` +
        `give a fallback model to make it: replay:${this.runId}+<model id>`,
    );
  }

  /**
   * How many instruction-generation calls the recorded run made in `iteration` (none with a fallback):
   * its generating calls, not `method: evol`'s information-gain questions (`gain-<n>`), which follow
   * from the evolutions.
   */
  async recordedInstructionCalls(iteration: number): Promise<number | undefined> {
    if (this.fallback) return undefined;
    const prefix = callKeyPrefix({ iteration, scope: INSTRUCTIONS_SCOPE });
    let n = 0;
    for (const key of (await this.load()).keys()) {
      if (key.startsWith(prefix) && !key.startsWith(`${prefix}gain-`)) n++;
    }
    return n;
  }

  private load(): Promise<Map<string, StoredCall>> {
    this.recorded ??= this.pool.listCalls(this.runId, '').then((calls) => {
      const byKey = new Map<string, StoredCall>();
      for (const call of calls) {
        // The first answered record of a logical call is the one its run used.
        const key = matchKey(call.callKey, call.stage);
        if (call.reply !== undefined && !byKey.has(key)) byKey.set(key, call);
      }
      return byKey;
    });
    return this.recorded;
  }
}
