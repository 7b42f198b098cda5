/**
 * The local run's progress view: folds the execution's history as it grows (`history/run-view.ts`,
 * as `status` and `watch` do) and prints the state being executed, the iteration, the counts of
 * generated / rejected (by reason) / accepted tasks and the pool size, as plain lines that read the same in a terminal and in CI logs. On a terminal
 * (`liveView`) a bar stays below those lines from the command's first second: what start-up is doing,
 * then the run's tasks, iteration, state, cost and ETA, as `watch` shows them.
 */

import type { HistoryEvent } from '@aws-sdk/client-sfn';
import {
  CONTROL_STATES,
  INSTRUCTION_BATCH_STATES,
  SHARDED_GATE_STATES,
  STAGES,
} from '../../functions/stages.ts';
import { initialRunView, type RunView, reduce, timing } from '../history/run-view.ts';
import { formatEntries, groupCounts } from './counts.ts';
import { statusLine } from './status.ts';

type Out = (line: string) => void;

/** Where a run shows its progress. */
export interface ProgressView {
  /** A line of the run's log (above the bar, on a terminal). */
  line(text: string): void;
  /** What the command is doing outside the execution, e.g. "starting local S3 and DynamoDB". */
  phase(text: string): void;
  /** One more event of the run's history (Step Functions history events): its lines, and the bar's counts. */
  event(event: HistoryEvent): void;
  /** The run has ended: the bar goes away. */
  done(): void;
}

/** `[  1.2s]`: seconds since `started`. */
export const stamp = (started: number) =>
  `[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s]`;

/** Folds the run's history as it grows, printing the lines each event gives, stamped. */
function follow(out: Out, started: number) {
  let view = initialRunView;
  let events = 0;
  return {
    /** The run so far, once its history has begun. */
    view: () => (events > 0 ? view : undefined),
    event(event: HistoryEvent) {
      const was = view;
      view = reduce(view, event);
      events++;
      for (const line of progressLines(event, was, view)) out(`${stamp(started)} ${line}`);
    },
  };
}

/** Plain lines (CI, logs, tests): each start-up phase is a line of its own. */
export function plainView(out: Out, started = performance.now()): ProgressView {
  const run = follow(out, started);
  return {
    line: out,
    phase: (text) => {
      if (text !== 'running') out(`${stamp(started)} ${text}`);
    },
    event: run.event,
    done: () => {},
  };
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A live bar at the bottom of a terminal, redrawn four times a second, with the log lines above it.
 * Before the execution it says what start-up is doing; then the counts, state, cost and ETA, as
 * `watch` shows them.
 */
export function liveView(
  stream: NodeJS.WriteStream,
  { intervalMs = 250, started = performance.now() }: { intervalMs?: number; started?: number } = {},
): ProgressView {
  let phase = 'starting';
  let tick = 0;
  const line = (text: string) => {
    stream.write(`\r\u001b[2K${text}\n`);
    render();
  };
  const run = follow(line, started);
  const render = () => {
    const view = run.view();
    const seconds = `${((performance.now() - started) / 1000).toFixed(1)} s`;
    const spinner = SPINNER[tick++ % SPINNER.length];
    const text = view
      ? `${statusLine({ ...view, ...timing(view) }, true)}${phase === 'running' ? '' : ` · ${phase}`} · ${seconds}`
      : `${spinner} ${phase} · ${seconds}`;
    const width = stream.columns || 100; // 0 when the terminal does not say
    stream.write(`\r\u001b[2K${text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text}`);
  };
  const timer = setInterval(render, intervalMs);
  timer.unref();
  render();
  return {
    line,
    phase: (text) => {
      phase = text;
      render();
    },
    event: run.event,
    done: () => {
      clearInterval(timer);
      stream.write('\r\u001b[2K');
    },
  };
}

/**
 * The plain lines one more history event gives, from the run before it (`was`) and after it (`now`):
 * each iteration, each state entered, the Map's items every ten and at the end, retries, and what each
 * stage reported.
 */
export function progressLines(event: HistoryEvent, was: RunView, now: RunView): string[] {
  const entered = event.stateEnteredEventDetails?.name;
  if (entered) {
    const lines = now.iteration > was.iteration ? [`iteration ${now.iteration}`] : [];
    // A Map item's state is not a step of its own: its Map's name says it.
    const item = entered === STAGES.generateInstances.state || entered === STAGES.generateInstructions.state;
    if (!item && entered !== CONTROL_STATES.enough) lines.push(`  ▸ ${entered}`);
    return lines;
  }
  const { chunks } = now;
  if (
    event.type === 'MapIterationSucceeded' &&
    chunks &&
    (chunks.done === chunks.total || chunks.done % 10 === 0)
  )
    return [`    chunks ${chunks.done}/${chunks.total}`];
  if (now.retries > was.retries) return [`    retrying "${now.state}"`];
  const { generation, gated, tasks } = now.current;
  switch (event.stateExitedEventDetails?.name) {
    case INSTRUCTION_BATCH_STATES.collect:
      return generation
        ? [
            `    ${generation.prompts} calls → ${generation.candidates} candidates (${generation.malformed} malformed, ${generation.droppedByTruncation} lost to truncation)`,
          ]
        : [];
    case STAGES.filter.state:
    case SHARDED_GATE_STATES.merge:
      return gated
        ? [
            `    accepted ${gated.accepted ?? 0} of ${gated.generated ?? 0}; rejected: ${formatEntries(groupCounts(gated).instructions)}`,
          ]
        : [];
    case STAGES.generateInstances.mapState: {
      const groups = groupCounts(tasks ?? {});
      return [
        `    tasks with valid instances ${tasks?.complete ?? 0}; tasks dropped: ${formatEntries(groups.tasks)}`,
        `    instances dropped: ${formatEntries(groups.instances)}`,
      ];
    }
    case STAGES.saveIteration.state:
      return [`    pool ${now.poolSize} tasks; this run added ${now.added} of ${now.target}`];
    default:
      return [];
  }
}
