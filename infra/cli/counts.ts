/**
 * Groups a run's flat counters for display (why instructions, tasks, instances and replies were lost), and
 * lays out the summary tables of `run` and `status`.
 */

export interface GroupedCounts {
  /** Instructions rejected by the heuristic filters or the ROUGE-L gate, by reason. */
  instructions: [string, number][];
  /** Accepted instructions dropped at the instance stage (no valid instance, conflicting outputs, low quality). */
  tasks: [string, number][];
  /** Single instances dropped by the instance filters. */
  instances: [string, number][];
  /** Model replies (or parts) that could not be used (a teacher's `teach-*`: its instance dropped), judge verdicts missing, and calls given up after their retries (`lost`). */
  replies: [string, number][];
}

// `unparseable` is the sum of the `reply-*` counters, shown by its parts.
const TOTALS = new Set(['generated', 'accepted', 'complete', 'rejected', 'prompts', 'unparseable']);
const TASK_REASONS = new Set([
  'no-valid-instances',
  'conflicting-outputs',
  'model-call-failed',
  'not-recorded',
  'low-quality',
  'evol-could-not-answer',
  'evol-stopwords-only',
  'rejected-unknown',
]);

const sorted = (entries: [string, number][]) => entries.filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);

export function groupCounts(counts: Record<string, number>): GroupedCounts {
  const groups: GroupedCounts = { instructions: [], tasks: [], instances: [], replies: [] };
  for (const [key, n] of Object.entries(counts)) {
    if (TOTALS.has(key)) continue;
    if (key.startsWith('instance-')) groups.instances.push([key.slice('instance-'.length), n]);
    else if (TASK_REASONS.has(key)) groups.tasks.push([key, n]);
    else if (
      key.startsWith('reply-') ||
      key.startsWith('judge-') ||
      key.startsWith('teach-') ||
      key.endsWith('-unparseable') ||
      key === 'lost'
    )
      groups.replies.push([key, n]);
    else groups.instructions.push([key, n]);
  }
  return {
    instructions: sorted(groups.instructions),
    tasks: sorted(groups.tasks),
    instances: sorted(groups.instances),
    replies: sorted(groups.replies),
  };
}

/** `a 3, b 2` (or `none`). */
export const formatEntries = (entries: [string, number][]) =>
  entries.length === 0 ? 'none' : entries.map(([key, n]) => `${key} ${n}`).join(', ');

/** A summary table: one `key  value` line per field, indented, the keys padded to one width. */
export function formatFields(rows: readonly [string, string | number][]): string {
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `  ${key.padEnd(width)}  ${value}`).join('\n');
}
