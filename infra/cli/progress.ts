/**
 * The local run's progress view: reads the execution's event log as it happens and prints the state
 * being executed, the iteration, the counts of generated / rejected (by reason) / accepted tasks and
 * the pool size. Plain lines, so it reads the same in a terminal and in CI logs.
 */

import { addCounts, type Counts } from '../../functions/shared/schemas.ts';
import { CONTROL_STATES, STAGES } from '../../functions/stages.ts';
import type { EventLog } from '../local/stack.ts';
import { formatEntries, groupCounts } from './counts.ts';

type Out = (line: string) => void;

interface StateEvent {
  type: string;
  state?: { name: string; input?: unknown; output?: unknown };
}

export function progressPrinter(out: Out): (event: EventLog) => void {
  let iteration = 0;
  let chunksDone = 0;
  let chunksTotal = 0;
  const started = performance.now();
  const stamp = () => `[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s]`;

  return (raw) => {
    const event = raw as StateEvent;
    const name = event.state?.name;
    if (event.type === 'StateEntered' && name) {
      if (name === STAGES.generateInstructions.state) {
        iteration++;
        out(`${stamp()} iteration ${iteration}`);
      }
      if (name === STAGES.generateInstances.mapState) {
        chunksDone = 0;
        chunksTotal = ((event.state?.input as { gated?: { chunks?: unknown[] } })?.gated?.chunks ?? [])
          .length;
      }
      if (name !== STAGES.generateInstances.state && name !== CONTROL_STATES.enough)
        out(`${stamp()}   ▸ ${name}`);
      return;
    }
    if (event.type === 'MapIterationSucceeded') {
      chunksDone++;
      if (chunksDone === chunksTotal || chunksDone % 10 === 0)
        out(`${stamp()}     chunks ${chunksDone}/${chunksTotal}`);
      return;
    }
    if (event.type === 'StateRetried' && name) {
      out(`${stamp()}     retrying "${name}"`);
      return;
    }
    if (event.type !== 'StateExited' || !name) return;
    const output = event.state?.output as Record<string, never> | undefined;
    if (name === STAGES.generateInstructions.state) {
      const g = (
        output as {
          generated?: { prompts: number; candidates: number; malformed: number; droppedByTruncation: number };
        }
      )?.generated;
      if (g) {
        out(
          `${stamp()}     ${g.prompts} calls → ${g.candidates} candidates (${g.malformed} malformed, ${g.droppedByTruncation} lost to truncation)`,
        );
      }
    } else if (name === STAGES.filter.state) {
      const counts = (output as { gated?: { counts: Record<string, number> } })?.gated?.counts ?? {};
      const rejected = formatEntries(groupCounts(counts).instructions);
      out(
        `${stamp()}     accepted ${counts.accepted ?? 0} of ${counts.generated ?? 0}; rejected: ${rejected}`,
      );
    } else if (name === STAGES.generateInstances.mapState) {
      const results = (output as { instances?: { counts: Record<string, number> }[] })?.instances ?? [];
      const sum = results.reduce<Counts>((total, result) => addCounts(total, result.counts), {});
      const groups = groupCounts(sum);
      out(
        `${stamp()}     tasks with valid instances ${sum.complete ?? 0}; tasks dropped: ${formatEntries(groups.tasks)}`,
      );
      out(`${stamp()}     instances dropped: ${formatEntries(groups.instances)}`);
    } else if (name === STAGES.saveIteration.state) {
      const progress = (output as { progress?: { added: number; poolSize: number } })?.progress;
      const target = (output as { config?: { target: number } })?.config?.target;
      if (progress)
        out(`${stamp()}     pool ${progress.poolSize} tasks; this run added ${progress.added} of ${target}`);
    }
  };
}
