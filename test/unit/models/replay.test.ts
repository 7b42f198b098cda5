import { describe, expect, it } from 'vitest';
import { NotRecorded } from '../../../functions/shared/errors.ts';
import { promptHash } from '../../../functions/shared/model-calls.ts';
import { ReplayModel } from '../../../functions/shared/models/replay.ts';
import type {
  ModelFormat,
  ModelRequest,
  ModelStage,
  StoredCall,
  TextModel,
} from '../../../functions/shared/ports.ts';
import { MemoryPool } from '../fakes.ts';

const FORMATS: Record<ModelStage, ModelFormat> = {
  'generate-instructions': 'instructions/default',
  classify: 'classify/default',
  'generate-instances': 'instances/default-generation',
  judge: 'judge/default',
  teach: 'teach/explained',
};

const request = (stage: ModelStage, prompt: string): ModelRequest => ({
  stage,
  format: FORMATS[stage],
  kind: 'chat',
  prompt,
  temperature: 0.7,
  topP: 0.5,
  maxTokens: 100,
});

async function recordedRun() {
  const pool = new MemoryPool();
  const record = (callKey: string, asked: ModelRequest, reply: string): Promise<void> =>
    pool.putCall('rec', {
      callKey,
      callId: `id-${callKey}`,
      stage: asked.stage,
      iteration: Number(callKey.split('#')[0]),
      promptHash: promptHash(asked),
      model: 'offline',
      reply,
      finish: 'stop',
      inputTokens: 10,
      outputTokens: 20,
      estimated: false,
      latencyMs: 5,
      at: '2026-11-30T00:00:00.000Z',
    } satisfies StoredCall);
  await record('1#instructions#prompt-0', request('generate-instructions', 'pool A'), 'Task: one');
  await record('2#instructions#prompt-0', request('generate-instructions', 'pool A+'), 'Task: two');
  await record('2#instructions#prompt-1', request('generate-instructions', 'pool A+'), 'Task: three');
  await record('1#chunk-0#t1/instances-0', request('generate-instances', 'instances of one'), 'Input: x');
  await record('1#chunk-0#t1/judge', request('judge', 'judge one'), '{"score": 4}');
  return pool;
}

describe('a replay model', () => {
  it('serves an instruction call by iteration and position, even when the pool changed its prompt', async () => {
    const model = new ReplayModel('rec', await recordedRun());
    const reply = await model.generate(request('generate-instructions', 'pool B'), {
      callKey: '2#instructions#prompt-1',
    });
    expect(reply).toMatchObject({ text: 'Task: three', usage: { inputTokens: 0, outputTokens: 0 } });
    expect(await model.recordedInstructionCalls(2)).toBe(2);
    expect(await model.recordedInstructionCalls(3)).toBe(0);
  });

  it('serves a task’s call whichever iteration and chunk ask, but only for the same prompt', async () => {
    const model = new ReplayModel('rec', await recordedRun());
    const same = request('generate-instances', 'instances of one');
    expect((await model.generate(same, { callKey: '2#chunk-3#t1/instances-0' })).text).toBe('Input: x');
    const other = request('generate-instances', 'instances of one, another profile');
    await expect(model.generate(other, { callKey: '1#chunk-0#t1/instances-0' })).rejects.toThrow(NotRecorded);
  });

  it('serves a recorded judge verdict to the same task’s judge call, at no cost', async () => {
    const model = new ReplayModel('rec', await recordedRun());
    const reply = await model.generate(request('judge', 'judge one'), { callKey: '3#chunk-1#t1/judge' });
    expect(reply).toMatchObject({ text: '{"score": 4}', usage: { inputTokens: 0, outputTokens: 0 } });
    await expect(
      model.generate(request('judge', 'judge one, other instances'), { callKey: '1#chunk-0#t1/judge' }),
    ).rejects.toThrow(NotRecorded);
  });

  it('throws NotRecorded for a call the run never made, or sends it to the fallback', async () => {
    const pool = await recordedRun();
    const asked = request('generate-instances', 'instances of two');
    await expect(
      new ReplayModel('rec', pool).generate(asked, { callKey: '1#chunk-0#t2/classify' }),
    ).rejects.toThrow(
      /run rec has no recorded reply for this generate-instances call \(1#chunk-0#t2\/classify\)/,
    );
    const fallback: TextModel = {
      id: 'offline',
      generate: async () => ({
        text: 'made',
        finish: 'stop',
        usage: { inputTokens: 1, outputTokens: 1, estimated: false },
        latencyMs: 1,
        model: 'offline',
      }),
    };
    const withFallback = new ReplayModel('rec', pool, fallback);
    expect((await withFallback.generate(asked, { callKey: '1#chunk-0#t2/classify' })).text).toBe('made');
    // With a fallback, the re-run sizes its instruction calls itself.
    expect(await withFallback.recordedInstructionCalls(1)).toBeUndefined();
  });
});
