import { describe, expect, it } from 'vitest';
import {
  parseClassifyReply,
  parseInstancesReply,
  renderClassifyRequest,
  renderInstancesRequest,
} from '../../functions/generate-instances/prompt.ts';
import {
  type DemoTask,
  parseInstructionReply,
  renderInstructionRequest,
  selectDemonstrations,
} from '../../functions/generate-instructions/prompt.ts';
import {
  checkInstruction,
  type FilterReason,
  normalizeInstruction,
} from '../../functions/shared/engine/filters.ts';
import { rougeL } from '../../functions/shared/engine/rouge.ts';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import words from '../../functions/shared/models/offline-words.json' with { type: 'json' };
import type { ModelRequest } from '../../functions/shared/ports.ts';
import { createRng } from '../../functions/shared/random.ts';
import type { Candidate, ProfileName } from '../../functions/shared/schemas.ts';

const SEEDS: DemoTask[] = [
  ['Give three tips for staying healthy.', '', '1. Eat well. 2. Sleep. 3. Move.'],
  ['Write a haiku about autumn leaves.', '', 'Red leaves drift and fall'],
  ['Classify the sentiment of the given tweet as positive or negative.', 'I love this phone!', 'Positive'],
  ['Explain how a rainbow forms.', '', 'Sunlight is refracted by raindrops.'],
  ['Suggest a name for a new coffee shop.', '', 'The Daily Grind'],
  ['Translate the given sentence into French.', 'Good morning.', 'Bonjour.'],
  [
    'Summarize the given paragraph in one sentence.',
    'The team met twice and chose a logo.',
    'The team chose a logo.',
  ],
  ['Is the following number prime? Answer yes or no.', '37', 'Yes'],
  ['Describe your ideal weekend.', '', 'A long walk and a good book.'],
  ['List the planets of the solar system in order.', '', 'Mercury, Venus, Earth, Mars, ...'],
  ['Rewrite the sentence in the passive voice.', 'The cat ate the fish.', 'The fish was eaten by the cat.'],
  ['What are the benefits of regular exercise?', '', 'Better sleep and mood.'],
  ['Find the largest number in the given list.', '[3, 9, 2]', '9'],
  ['Write a cover letter for a barista job.', '', 'Dear hiring manager, ...'],
  ['Tell me whether the following statement is true or false.', 'The sun is a star.', 'True'],
  ['Generate a title for a mystery novel.', '', 'The Silent Key'],
].map(([instruction, input, output]) => ({ instruction, input, output }) as DemoTask);

const PROFILES: ProfileName[] = ['self-instruct', 'alpaca', 'default'];

/** The engine's filter reasons, grouped by the kind of noise the offline model injects. */
const NOISE_KIND: Record<FilterReason, string> = {
  empty: 'length',
  'too-short': 'length',
  'too-long': 'length',
  'banned-word': 'banned',
  'write-a-program': 'banned',
  'starts-with-punctuation': 'punctuation',
  'starts-with-non-ascii': 'non-ascii',
};

/** Which kind of noise the engine's filters (Alpaca's list, the widest) find in an instruction, if any. */
function rejection(instruction: string): string | null {
  const reason = checkInstruction('alpaca', normalizeInstruction('alpaca', instruction));
  return reason ? NOISE_KIND[reason] : null;
}

interface Call {
  demos: DemoTask[];
  request: ModelRequest;
  finish: 'stop' | 'length';
  text: string;
  candidates: Candidate[];
  malformed: number;
}

async function instructionCalls(model: OfflineModel, profile: ProfileName, n: number): Promise<Call[]> {
  const rng = createRng(`calls-${profile}`);
  const calls: Call[] = [];
  for (let i = 0; i < n; i++) {
    const demos = selectDemonstrations(profile, SEEDS, [], rng);
    const request = renderInstructionRequest(profile, demos);
    const reply = await model.generate(request);
    const parsed = parseInstructionReply(profile, reply, { demonstrations: demos.length });
    calls.push({ demos, request, finish: reply.finish, text: reply.text, ...parsed });
  }
  return calls;
}

describe('OfflineModel', () => {
  it('answers the same request with the same reply', async () => {
    const request = renderInstructionRequest('default', SEEDS.slice(0, 8));
    const a = await new OfflineModel({ seed: 'run-1' }).generate(request);
    const b = await new OfflineModel({ seed: 'run-1' }).generate(request);

    expect({ ...b, latencyMs: 0 }).toEqual({ ...a, latencyMs: 0 });
  });

  it('answers differently under another seed or to another prompt', async () => {
    const request = renderInstructionRequest('self-instruct', SEEDS.slice(0, 8));
    const model = new OfflineModel({ seed: 'run-1' });
    const first = await model.generate(request);

    expect((await new OfflineModel({ seed: 'run-2' }).generate(request)).text).not.toBe(first.text);
    expect((await model.generate(renderInstructionRequest('self-instruct', SEEDS.slice(8)))).text).not.toBe(
      first.text,
    );
  });

  it('estimates tokens as a quarter of the characters and says so', async () => {
    const request = renderClassifyRequest('default', 'Tell whether the email is spam or not spam.');
    const reply = await new OfflineModel().generate(request);

    expect(reply.model).toBe('offline');
    expect(reply.usage).toEqual({
      inputTokens: Math.ceil(((request.system ?? '') + request.prompt).length / 4),
      outputTokens: Math.ceil(reply.text.length / 4),
      estimated: true,
    });
    expect(reply.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it('rejects a noise rate outside [0, 1]', () => {
    expect(() => new OfflineModel({ noise: 1.5 })).toThrow(RangeError);
  });

  it('writes the reply its format tag names, whatever the prompt looks like', async () => {
    const model = new OfflineModel({ seed: 'tag', noise: 0 });
    const instances = renderInstancesRequest('default', 'Rewrite the following sentence about dams.', false);
    const classify = renderClassifyRequest('self-instruct', 'Is the following review positive or negative?');

    const inputFirst = await model.generate(instances);
    const labelFirst = await model.generate({ ...instances, format: 'instances/default-classification' });
    const yes = await model.generate(classify);
    // (The paper's 3-token limit would cut a JSON answer.)
    const json = await model.generate({ ...classify, format: 'classify/default', maxTokens: 50 });

    expect(inputFirst.text).toMatch(/\{"instances": \[\n {2}\{"input": /);
    expect(labelFirst.text).toMatch(/\{"instances": \[\n {2}\{"output": /);
    expect(yes.text).toBe(' Yes');
    expect(json.text).toMatch(/^\{"is_classification": (true|false)\}$/);
  });

  it('keeps its word banks as data, each item with only the placeholders its writer fills, once', () => {
    const fills: Record<string, string[]> = {
      frames: ['{t}', '{u}'],
      classificationFrames: ['{a}', '{o}', '{t}', '{l}'],
      constraints: ['{n}', '{k}'],
      sentences: ['{t}', '{T}'],
      answers: ['{t}', '{T}'],
      ...Object.fromEntries(
        [
          'prefixes',
          'audienceFrames',
          'bannedFrames',
          'shortFrames',
          'badStarts',
          'listItems',
          'questions',
        ].map((bank) => [bank, ['{t}']]),
      ),
    };
    for (const [bank, { items }] of Object.entries(words)) {
      expect(items.length, bank).toBeGreaterThan(0);
      for (const item of items) {
        const placeholders = item.match(/\{\w\}/g) ?? [];
        expect(item.trim(), bank).toBe(item);
        expect(new Set(placeholders).size, `${bank}: ${item}`).toBe(placeholders.length);
        for (const placeholder of placeholders)
          expect(fills[bank], `${bank}: ${item}`).toContain(placeholder);
      }
    }
  });

  it.each(PROFILES)('continues %s instruction prompts in a format its parser reads', async (profile) => {
    const calls = await instructionCalls(new OfflineModel({ seed: 'formats' }), profile, 20);
    const candidates = calls.flatMap((c) => c.candidates);

    expect(candidates.length).toBeGreaterThan(20 * 5);
    expect(candidates.every((c) => c.instruction.trim() !== '')).toBe(true);
    if (profile === 'alpaca') expect(candidates.every((c) => c.output !== undefined)).toBe(true);
    if (profile === 'default') expect(candidates.some((c) => c.isClassification === true)).toBe(true);
  });

  it('stops self-instruct lists before item 16 and Alpaca lists before task 20', async () => {
    const model = new OfflineModel({ seed: 'stops', noise: 0 });
    for (const call of await instructionCalls(model, 'self-instruct', 10)) {
      expect(call.text).not.toMatch(/\n16/);
      expect(call.candidates.length).toBeLessThanOrEqual(7);
    }
    for (const call of await instructionCalls(model, 'alpaca', 5)) {
      expect(call.text).not.toMatch(/20\. Instruction/);
    }
  });

  it('writes only clean, well-formed tasks without noise', async () => {
    const model = new OfflineModel({ seed: 'clean', noise: 0 });
    for (const profile of PROFILES) {
      const calls = await instructionCalls(model, profile, 30);

      expect(calls.every((c) => c.finish === 'stop' && c.malformed === 0)).toBe(true);
      expect(calls.flatMap((c) => c.candidates).filter((c) => rejection(c.instruction) !== null)).toEqual([]);
    }
  });

  it('makes each kind of mistake now and then with the default noise', async () => {
    const model = new OfflineModel({ seed: 'noise' });
    const calls = [
      ...(await instructionCalls(model, 'self-instruct', 100)),
      ...(await instructionCalls(model, 'alpaca', 50)),
      ...(await instructionCalls(model, 'default', 100)),
    ];
    const seen = new Set<string>();
    for (const call of calls) {
      if (call.finish === 'length') seen.add('truncated');
      if (call.malformed > 0) seen.add(`malformed ${call.request.kind}`);
      for (const { instruction } of call.candidates) {
        const reason = rejection(instruction);
        if (reason) seen.add(reason);
        if (instruction.includes('\n')) seen.add('glued lines');
        if (call.demos.some((d) => rougeL(instruction, d.instruction) > 0.7)) seen.add('near-duplicate');
      }
    }

    expect([...seen].sort()).toEqual([
      'banned',
      'glued lines',
      'length',
      'malformed chat',
      'malformed completion',
      'near-duplicate',
      'non-ascii',
      'punctuation',
      'truncated',
    ]);
  });

  it('answers the classification question from the labels an instruction names', async () => {
    const model = new OfflineModel({ noise: 0 });
    const clf = 'Decide whether the following review of a phone is positive or negative.';
    const gen = 'Write a short story about a lighthouse keeper.';
    for (const profile of PROFILES) {
      const yes = await model.generate(renderClassifyRequest(profile, clf));
      const no = await model.generate(renderClassifyRequest(profile, gen));

      expect(parseClassifyReply(profile, yes.text)).toBe(true);
      expect(parseClassifyReply(profile, no.text)).toBe(false);
    }
  });

  it('writes one instance per named label, output first, for classification tasks', async () => {
    const model = new OfflineModel({ noise: 0 });
    const instruction = 'Classify the following tweet about trains as positive, negative, or neutral.';
    for (const profile of ['self-instruct', 'default'] as const) {
      const reply = await model.generate(renderInstancesRequest(profile, instruction, true));
      const { instances, malformed } = parseInstancesReply(profile, reply, true);

      expect(malformed).toBe(false);
      expect(instances.length).toBeGreaterThanOrEqual(2);
      for (const { input, output } of instances) {
        expect(['Positive', 'Negative', 'Neutral']).toContain(output);
        expect(input).not.toBe('');
      }
    }
  });

  it('writes input/output examples for generation tasks, and outputs alone when no input is needed', async () => {
    const model = new OfflineModel({ noise: 0 });
    for (const profile of ['self-instruct', 'default'] as const) {
      const withInput = parseInstancesReply(
        profile,
        await model.generate(
          renderInstancesRequest(profile, 'Rewrite the following sentence about dams.', false),
        ),
        false,
      );
      const without = parseInstancesReply(
        profile,
        await model.generate(
          renderInstancesRequest(profile, 'Give three tips for a beginner in knitting.', false),
        ),
        false,
      );

      expect(withInput.instances.length).toBeGreaterThanOrEqual(1);
      expect(
        withInput.instances.every((i) => i.input !== '' && i.output !== '' && i.input !== i.output),
      ).toBe(true);
      expect(without.instances.length).toBeGreaterThanOrEqual(1);
      expect(without.instances.every((i) => i.input === '' && i.output.includes('knitting'))).toBe(true);
    }
  });

  it('gives the instance filters work with the default noise', async () => {
    const model = new OfflineModel({ seed: 'instances' });
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const clf = i % 3 === 0;
      const instruction = clf
        ? `Decide whether the following comment number ${i} is helpful or unhelpful.`
        : `Summarize the following paragraph about bridges, case ${i}.`;
      const reply = await model.generate(renderInstancesRequest('self-instruct', instruction, clf));
      const { instances } = parseInstancesReply('self-instruct', reply, clf);
      if (reply.finish === 'length') seen.add('truncated');
      const outputs = new Map<string, string>();
      for (const { input, output } of instances) {
        if (output === '') seen.add('empty output');
        else if (output.endsWith(':')) seen.add('ends with colon');
        else if (input === output) seen.add('input equals output');
        if (input !== '' && outputs.has(input) && outputs.get(input) !== output)
          seen.add('conflicting outputs');
        outputs.set(input, output);
      }
    }

    expect([...seen].sort()).toEqual([
      'conflicting outputs',
      'empty output',
      'ends with colon',
      'input equals output',
      'truncated',
    ]);
  });

  it('cuts a reply longer than maxTokens and says so', async () => {
    const request = { ...renderInstructionRequest('alpaca', SEEDS.slice(0, 3)), maxTokens: 50 };
    const reply = await new OfflineModel().generate(request);

    expect(reply.finish).toBe('length');
    expect(reply.text.length).toBeLessThanOrEqual(200);
    expect(reply.usage.outputTokens).toBeLessThanOrEqual(50);
  });

  it('lets about half of its tasks through the filters and a ROUGE-L gate of 0.7', async () => {
    const model = new OfflineModel({ seed: 'acceptance' });
    const rng = createRng('acceptance');
    const pool = SEEDS.map((s) => s.instruction);
    const machine: DemoTask[] = [];
    let generated = 0;
    for (let call = 0; call < 60; call++) {
      const demos = selectDemonstrations('default', SEEDS, machine, rng);
      const reply = await model.generate(renderInstructionRequest('default', demos));
      for (const { instruction } of parseInstructionReply('default', reply).candidates) {
        generated++;
        if (rejection(instruction) || pool.some((p) => rougeL(instruction, p) > 0.7)) continue;
        pool.push(instruction);
        machine.push({ instruction });
      }
    }
    const rate = machine.length / generated;

    expect(rate).toBeGreaterThan(0.4);
    expect(rate).toBeLessThan(0.8);
  });
});
