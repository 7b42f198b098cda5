import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  CLASSIFY_TASKS,
  type ClassifyTask,
  INSTANCES_TASKS,
  type InstancesTask,
  renderClassifyRequest,
  renderInstancesRequest,
} from '../../functions/generate-instances/prompt.ts';
import {
  INSTRUCTION_TASKS,
  type InstructionTask,
  renderInstructionRequest,
} from '../../functions/generate-instructions/prompt.ts';
import { INSTRUCTION_RULES, type InstructionRules } from '../../functions/shared/engine/filters.ts';
import { PROFILES, type Profile, type ProfileTable } from '../../functions/shared/profiles.ts';
import { ProfileName } from '../../functions/shared/schemas.ts';

const TABLES = { PROFILES, INSTRUCTION_TASKS, CLASSIFY_TASKS, INSTANCES_TASKS, INSTRUCTION_RULES };

describe('profile tables', () => {
  it('are typed as one entry per profile name, so a profile added without its entries does not compile', () => {
    expectTypeOf(PROFILES).toEqualTypeOf<ProfileTable<Profile>>();
    expectTypeOf(INSTRUCTION_TASKS).toEqualTypeOf<ProfileTable<InstructionTask>>();
    expectTypeOf(CLASSIFY_TASKS).toEqualTypeOf<ProfileTable<ClassifyTask>>();
    expectTypeOf(INSTANCES_TASKS).toEqualTypeOf<ProfileTable<InstancesTask>>();
    expectTypeOf(INSTRUCTION_RULES).toEqualTypeOf<ProfileTable<InstructionRules>>();
    expectTypeOf<keyof ProfileTable<unknown>>().toEqualTypeOf<ProfileName>();

    // @ts-expect-error a table without the `default` entry is a compile error
    const missing: ProfileTable<number> = { 'self-instruct': 1, alpaca: 2 };
    // @ts-expect-error and so is an entry for a profile that does not exist
    const extra: ProfileTable<number> = { 'self-instruct': 1, alpaca: 2, default: 3, evol: 4 };
    expect([missing, extra]).toHaveLength(2);
  });

  it.each(Object.entries(TABLES))('%s has an entry for every profile and nothing else', (_name, table) => {
    expect(Object.keys(table).sort()).toEqual([...ProfileName.options].sort());
  });
});

describe('request formats', () => {
  it.each(ProfileName.options)('tags each %s request with a format of its own stage', (profile) => {
    const demos = [{ instruction: 'Give three tips for staying healthy.' }];
    const requests = [
      renderInstructionRequest(profile, demos),
      renderClassifyRequest(profile, 'Is the sky blue?'),
      renderInstancesRequest(profile, 'Is the sky blue?', true),
      renderInstancesRequest(profile, 'Name a fruit.', false),
    ];
    expect(requests.map((r) => `${r.stage} ${r.format.split('/')[0]}`)).toEqual([
      'generate-instructions instructions',
      'classify classify',
      'generate-instances instances',
      'generate-instances instances',
    ]);
  });

  it('gives each prompt its own format, so the offline model never has to guess from the text', () => {
    const requests = ProfileName.options.flatMap((profile) => [
      renderInstructionRequest(profile, []),
      renderClassifyRequest(profile, 't'),
      renderInstancesRequest(profile, 't', true),
      renderInstancesRequest(profile, 't', false),
    ]);
    const formatsByPrompt = new Map<string, Set<string>>();
    for (const { prompt, format } of requests) {
      formatsByPrompt.set(prompt, (formatsByPrompt.get(prompt) ?? new Set()).add(format));
    }
    // self-instruct and alpaca share the paper's classification and instance prompts: 9 prompts in all.
    expect([...formatsByPrompt.values()].map((formats) => formats.size)).toEqual(Array(9).fill(1));
    expect(new Set(requests.map((r) => r.format)).size).toBe(9);
  });
});
