/**
 * The local run's progress view: reads the execution's event log as it happens and prints the state
 * being executed, the iteration, the counts of generated / rejected (by reason) / accepted tasks and
 * the pool size, as plain lines that read the same in a terminal and in CI logs. On a terminal
 * (`liveView`) a bar stays below those lines from the command's first second: what start-up is doing,
 * then the run's tasks, iteration, state, cost and ETA, as `watch` shows them.
 */

import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { addCounts, type Counts } from '../../functions/shared/schemas.ts';
import { CONTROL_STATES, STAGES } from '../../functions/stages.ts';
import type { EventLog } from '../local/stack.ts';
import { formatEntries, groupCounts } from './counts.ts';
import { type RunStatus, statusFromHistory, statusLine } from './status.ts';

type Out = (line: string) => void;

interface StateEvent {
  type: string;
  state?: { name: string; input?: unknown; output?: unknown };
}

/** Where a run shows its progress. */
export interface ProgressView {
  /** A line of the run's log (above the bar, on a terminal). */
  line(text: string): void;
  /** What the command is doing outside the execution, e.g. "starting local S3 and DynamoDB". */
  phase(text: string): void;
  /** The run's history as it grows (Step Functions history events): the bar reads its counts from it. */
  watch(runId: string, history: readonly HistoryEvent[]): void;
  /** The run has ended: the bar goes away. */
  done(): void;
}

/** `[  1.2s]`: seconds since `started`. */
export const stamp = (started: number) =>
  `[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s]`;

/** Plain lines (CI, logs, tests): each start-up phase is a line of its own. */
export function plainView(out: Out, started = performance.now()): ProgressView {
  return {
    line: out,
    phase: (text) => {
      if (text !== 'running') out(`${stamp(started)} ${text}`);
    },
    watch: () => {},
    done: () => {},
  };
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A live bar at the bottom of a terminal, redrawn four times a second, with the log lines above it.
 * Before the execution it says what start-up is doing; then the counts, state, cost and ETA.
 */
export function liveView(
  stream: NodeJS.WriteStream,
  { intervalMs = 250, started = performance.now() }: { intervalMs?: number; started?: number } = {},
): ProgressView {
  let phase = 'starting';
  let runId = '';
  let history: readonly HistoryEvent[] = [];
  let status: RunStatus | undefined;
  let seen = -1;
  let tick = 0;
  const render = () => {
    if (history.length !== seen) {
      seen = history.length;
      status = seen > 0 ? statusFromHistory(runId, history) : undefined;
    }
    const seconds = `${((performance.now() - started) / 1000).toFixed(1)} s`;
    const spinner = SPINNER[tick++ % SPINNER.length];
    const text = status
      ? `${statusLine(status, true)}${phase === 'running' ? '' : ` · ${phase}`} · ${seconds}`
      : `${spinner} ${phase} · ${seconds}`;
    const width = stream.columns || 100; // 0 when the terminal does not say
    stream.write(`\r\u001b[2K${text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text}`);
  };
  const timer = setInterval(render, intervalMs);
  timer.unref();
  render();
  return {
    line: (text) => {
      stream.write(`\r\u001b[2K${text}\n`);
      render();
    },
    phase: (text) => {
      phase = text;
      render();
    },
    watch: (id, events) => {
      runId = id;
      history = events;
    },
    done: () => {
      clearInterval(timer);
      stream.write('\r\u001b[2K');
    },
  };
}

/** Prints the execution's events as plain lines, stamped with the seconds since `started`. */
export function progressPrinter(out: Out, started = performance.now()): (event: EventLog) => void {
  let iteration = 0;
  let chunksDone = 0;
  let chunksTotal = 0;
  const at = () => stamp(started);

  return (raw) => {
    const event = raw as StateEvent;
    const name = event.state?.name;
    if (event.type === 'StateEntered' && name) {
      if (name === STAGES.generateInstructions.state) {
        iteration++;
        out(`${at()} iteration ${iteration}`);
      }
      if (name === STAGES.generateInstances.mapState) {
        chunksDone = 0;
        chunksTotal = ((event.state?.input as { gated?: { chunks?: unknown[] } })?.gated?.chunks ?? [])
          .length;
      }
      if (name !== STAGES.generateInstances.state && name !== CONTROL_STATES.enough)
        out(`${at()}   ▸ ${name}`);
      return;
    }
    if (event.type === 'MapIterationSucceeded') {
      chunksDone++;
      if (chunksDone === chunksTotal || chunksDone % 10 === 0)
        out(`${at()}     chunks ${chunksDone}/${chunksTotal}`);
      return;
    }
    if (event.type === 'StateRetried' && name) {
      out(`${at()}     retrying "${name}"`);
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
          `${at()}     ${g.prompts} calls → ${g.candidates} candidates (${g.malformed} malformed, ${g.droppedByTruncation} lost to truncation)`,
        );
      }
    } else if (name === STAGES.filter.state) {
      const counts = (output as { gated?: { counts: Record<string, number> } })?.gated?.counts ?? {};
      const rejected = formatEntries(groupCounts(counts).instructions);
      out(`${at()}     accepted ${counts.accepted ?? 0} of ${counts.generated ?? 0}; rejected: ${rejected}`);
    } else if (name === STAGES.generateInstances.mapState) {
      const results = (output as { instances?: { counts: Record<string, number> }[] })?.instances ?? [];
      const sum = results.reduce<Counts>((total, result) => addCounts(total, result.counts), {});
      const groups = groupCounts(sum);
      out(
        `${at()}     tasks with valid instances ${sum.complete ?? 0}; tasks dropped: ${formatEntries(groups.tasks)}`,
      );
      out(`${at()}     instances dropped: ${formatEntries(groups.instances)}`);
    } else if (name === STAGES.saveIteration.state) {
      const progress = (output as { progress?: { added: number; poolSize: number } })?.progress;
      const target = (output as { config?: { target: number } })?.config?.target;
      if (progress)
        out(`${at()}     pool ${progress.poolSize} tasks; this run added ${progress.added} of ${target}`);
    }
  };
}
