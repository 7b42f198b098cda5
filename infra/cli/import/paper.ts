/**
 * The preparation step of the Self-Instruct code (Wang et al., 2022, `self_instruct/prepare_for_finetuning.py`)
 * for one line of `machine_generated_instances.jsonl`: its `raw_instances` parsed output-first for a
 * classification task (`parse_instances_for_classification_task`) and input-first otherwise
 * (`parse_instances_for_generation_task`), the last instance dropped when the reply was cut by the token
 * limit (`finish_reason == "length"`), then `filter_invalid_instances`, `filter_duplicate_instances` and at
 * most 5 instances per task (`random.sample`).
 *
 * The parsers and the filters are the stage's own ("Generate instances" reads the paper's instance
 * prompts' replies with them): `parseInstancesReply` of the `self-instruct` profile and `filterInstances`.
 * Where the paper's code is not deterministic, a seeded draw stands in: its duplicate filter goes through
 * a Python `set` (order by string hash, randomized per process), so which 5 of more valid instances its
 * `random.sample` keeps can't be reproduced; here the 5 are a uniform draw without replacement from a
 * generator seeded with `<seed>:<task id>`, kept in the order of the reply.
 */
import { parseInstancesReply } from '../../../functions/generate-instances/prompt.ts';
import { filterInstances } from '../../../functions/shared/engine/instances.ts';
import { createRng } from '../../../functions/shared/random.ts';
import type { Counts, Instance } from '../../../functions/shared/schemas.ts';

/** The paper's cap on instances per task. */
export const PAPER_MAX_INSTANCES = 5;

/** What the preparation step makes of one task's raw instances. */
export interface PreparedInstances {
  /** The instances kept, in the order of the reply. */
  kept: Instance[];
  /** Why the task has none left (the stage's reasons), when it has none. */
  rejected?: 'conflicting-outputs' | 'no-valid-instances';
  /** What was dropped, by the stage's outcome keys (`instance-<reason>`, `instances-unparseable`, `instance-truncated`). */
  outcome: Counts;
}

/**
 * Prepares one task's `raw_instances` as the paper's preparation step does (see the module comment).
 * `finishReason` is the reply's `instance_metadata.response.choices[0].finish_reason`; `seed` seeds the
 * draw of 5 among more valid instances.
 */
export function prepareInstances(
  rawInstances: string,
  {
    isClassification,
    finishReason,
    seed,
  }: { isClassification: boolean; finishReason: string | null; seed: string },
): PreparedInstances {
  const outcome: Counts = {};
  const count = (key: string, n: number) => {
    if (n > 0) outcome[key] = (outcome[key] ?? 0) + n;
  };
  const finish = finishReason === 'length' ? 'length' : 'stop';
  const parsed = parseInstancesReply('self-instruct', { text: rawInstances, finish }, isClassification);
  if (parsed.malformed) count('instances-unparseable', 1);
  else if (finish === 'length') {
    // The parser dropped the last instance of a cut reply; count it (when there was one).
    const whole = parseInstancesReply(
      'self-instruct',
      { text: rawInstances, finish: 'stop' },
      isClassification,
    );
    count('instance-truncated', whole.instances.length - parsed.instances.length);
  }
  const filtered = filterInstances(parsed.instances, { maxInstances: Number.POSITIVE_INFINITY });
  for (const [reason, n] of Object.entries<number>(filtered.dropped)) count(`instance-${reason}`, n);
  if (filtered.taskRejected) return { kept: [], rejected: filtered.taskRejected, outcome };
  let kept = filtered.kept;
  if (kept.length > PAPER_MAX_INSTANCES) {
    const order = new Map(kept.map((instance, i) => [instance, i]));
    kept = createRng(seed)
      .sample(kept, PAPER_MAX_INSTANCES)
      .sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
    count('instance-over-limit', filtered.kept.length - kept.length);
  }
  return { kept, outcome };
}
