/**
 * The instance filters of the Self-Instruct code's preparation step (`prepare_for_finetuning.py`:
 * `filter_invalid_instances`, `filter_duplicate_instances`, then at most 5 per task).
 */
import { z } from 'zod';
import type { Instance } from '../schemas.ts';
import { pyStrip } from './filters.ts';

/** Why an instance was dropped. */
export const INSTANCE_DROP_REASONS = [
  'input-equals-output',
  'empty-output',
  'ends-with-colon',
  'conflicting-outputs',
  'duplicate',
  'over-limit',
] as const;
/** Why an instance was dropped (zod enum, for counting). */
export const InstanceDropReason = z.enum(INSTANCE_DROP_REASONS);
export type InstanceDropReason = z.infer<typeof InstanceDropReason>;

/** Why a whole task is left without instances. */
export const TaskRejection = z.enum(['conflicting-outputs', 'no-valid-instances']);
export type TaskRejection = z.infer<typeof TaskRejection>;

/** What `filterInstances` kept, and what it dropped and why. */
export interface InstanceFilterResult {
  /** The instances kept, in their original order (the objects given). */
  kept: Instance[];
  /** Instances dropped, by reason (only reasons that occurred). */
  dropped: Partial<Record<InstanceDropReason, number>>;
  /** Set when the task has no instance left: it should be rejected. */
  taskRejected?: TaskRejection;
}

/**
 * Filters a task's instances as the original's preparation step does:
 * 1. drop an instance whose input equals its output, whose output is empty, or whose input or output
 *    ends with `:` (usually a cut-off generation), checked in that order;
 * 2. reject the whole task when two remaining instances share a non-empty input with different outputs;
 * 3. remove exact duplicates (the first occurrence stays, order kept: the original's `set` loses order);
 * 4. keep at most `maxInstances` (default 5): the first ones, a deterministic stand-in for the original's
 *    `random.sample`.
 * Inputs and outputs are compared after Python's `strip()`, as the original's parsers had stripped them.
 */
export function filterInstances(
  instances: readonly Instance[],
  { maxInstances = 5 }: { maxInstances?: number } = {},
): InstanceFilterResult {
  const dropped: Partial<Record<InstanceDropReason, number>> = {};
  const drop = (reason: InstanceDropReason, n = 1) => {
    if (n > 0) dropped[reason] = (dropped[reason] ?? 0) + n;
  };

  const valid: { instance: Instance; input: string; output: string }[] = [];
  for (const instance of instances) {
    const input = pyStrip(instance.input);
    const output = pyStrip(instance.output);
    if (input === output) drop('input-equals-output');
    else if (output === '') drop('empty-output');
    else if (input.endsWith(':') || output.endsWith(':')) drop('ends-with-colon');
    else valid.push({ instance, input, output });
  }

  const outputByInput = new Map<string, string>();
  for (const { input, output } of valid) {
    if (input === '') continue;
    const seen = outputByInput.get(input);
    if (seen !== undefined && seen !== output) {
      drop('conflicting-outputs', valid.length);
      return { kept: [], dropped, taskRejected: 'conflicting-outputs' };
    }
    outputByInput.set(input, output);
  }

  const seen = new Set<string>();
  const unique: Instance[] = [];
  for (const { instance, input, output } of valid) {
    const key = JSON.stringify([input, output]);
    if (seen.has(key)) drop('duplicate');
    else {
      seen.add(key);
      unique.push(instance);
    }
  }

  const kept = unique.slice(0, Math.max(0, maxInstances));
  drop('over-limit', unique.length - kept.length);
  return kept.length > 0 ? { kept, dropped } : { kept, dropped, taskRejected: 'no-valid-instances' };
}
