import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GAIN_BATCH, renderEqualRequest } from '../../functions/generate-instructions/evol.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';
import { estimateTokens } from '../../functions/shared/models/usage.ts';
import { shippedPrices } from '../../functions/shared/pricing/pricing.ts';
import { SHIPPED_TEMPLATES } from '../../functions/shared/prompt-templates.ts';
import { SeedTask } from '../../functions/shared/schemas.ts';
import { calibrate, EVOL_DEFAULTS, PROFILE_DEFAULTS } from '../../infra/cli/estimate/calibrate.ts';
import { measurePrompts } from '../../infra/cli/estimate/prompts.ts';
import { estimateRun } from '../../infra/cli/estimate/simulate.ts';
import { runSummary } from './fakes.ts';

const seeds = parseRecords(
  readFileSync('seeds/seed_tasks.jsonl', 'utf8'),
  SeedTask,
  'seeds/seed_tasks.jsonl',
);
const prices = shippedPrices();
const input = {
  model: 'bedrock:amazon.nova-micro-v1:0',
  target: 1_000,
  profile: 'default',
  prices,
  seeds,
} as const;

describe('estimate --method evol', () => {
  it('counts one evolving call per sized call plus the information-gain calls, at the evol yields', () => {
    const evol = estimateRun({ ...input, method: 'evol' });
    const selfInstruct = estimateRun(input);

    const instructions = evol.stages.find((stage) => stage.stage === 'generate-instructions');
    expect(evol.method).toBe('evol');
    expect(evol.calibration).toEqual(EVOL_DEFAULTS);
    // Candidates are one per evolving call (at the calibration's rate): the evolving calls are
    // candidates / candidatesPerCall, and the instruction step adds gainCallsPerCall per evolving call.
    const evolving = evol.run.candidates / EVOL_DEFAULTS.candidatesPerCall;
    expect(instructions?.calls).toBeCloseTo(evolving * (1 + (EVOL_DEFAULTS.gainCallsPerCall ?? 0)), 6);
    expect(evol.run.instructionCalls).toBeGreaterThan(selfInstruct.run.instructionCalls);
    expect(evol.run.reachesTarget).toBe(true);
    // Evolved candidates carry no classification flag: every accepted one gets a classification call.
    expect(evol.stages.find((stage) => stage.stage === 'classify')?.calls).toBeCloseTo(
      evol.run.acceptedInstructions,
      6,
    );
  });

  it('prices the instruction step’s input at the evolving prompts, weighted with the information-gain question', () => {
    const plain = measurePrompts('default', seeds, { method: 'evol' })['generate-instructions'];
    const weighted = measurePrompts('default', seeds, { method: 'evol', gainCallsPerCall: 1 })[
      'generate-instructions'
    ];
    const pairs = seeds
      .slice(0, GAIN_BATCH)
      .map((task, i) => ({ parent: task.instruction, child: seeds[i + 1]?.instruction ?? '' }));
    const gain = estimateTokens(renderEqualRequest(pairs, SHIPPED_TEMPLATES).prompt);

    expect(weighted).toBeCloseTo((plain + gain) / 2, 6);
    expect(plain).not.toBe(measurePrompts('default', seeds)['generate-instructions']);
  });

  it('calibrates the information-gain calls from a run’s call records: the instruction calls beyond its prompts', () => {
    const summary = runSummary({
      counts: { prompts: 100, generated: 97, accepted: 40, complete: 33 },
    });
    const totals = {
      'generate-instructions': { calls: 109, outputTokens: 5_000 },
      classify: { calls: 40, outputTokens: 280 },
      'generate-instances': { calls: 40, outputTokens: 4_800 },
      judge: { calls: 0, outputTokens: 0 },
      teach: { calls: 0, outputTokens: 0 },
    };

    const calibration = calibrate('default', [summary], totals, 'a run');

    expect(calibration.gainCallsPerCall).toBeCloseTo(0.09, 10);
    expect(
      calibrate(
        'default',
        [summary],
        { ...totals, 'generate-instructions': { calls: 100, outputTokens: 1 } },
        'a run',
      ).gainCallsPerCall,
    ).toBeUndefined();
    expect(PROFILE_DEFAULTS.default.gainCallsPerCall).toBeUndefined();
  });
});
