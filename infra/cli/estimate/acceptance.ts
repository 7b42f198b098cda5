/**
 * The share of candidates the filters and the ROUGE-L gate accept, as a function of the pool's size.
 *
 * A new candidate is rejected when it is too close to any instruction of the pool, so the bigger the
 * pool, the likelier a rejection: acceptance falls as a run grows, and an estimate that held it constant
 * would undercount the calls (and the time) a large target needs. The curve is a power law,
 * `rate × (pool / atPool)^-exponent` (capped at the highest rate measured), fitted to the per-iteration gate outcomes of
 * recorded runs: a straight line in log–log space, each iteration weighted by its candidates. A power
 * law fits the measured decline (see `DEFAULT_ACCEPTANCE_CURVE`) and, unlike an exponential, never
 * reaches zero, so it extrapolates beyond the measured pools without claiming a run cannot finish.
 */
import { z } from 'zod';

/** Acceptance against pool size: `rate × (pool / atPool)^-exponent`, at most `maxRate`. */
export const AcceptanceCurve = z.object({
  /** Acceptance at the reference pool size. */
  rate: z.number().min(0).max(1),
  /** The reference pool size (instructions in the ROUGE-L index, seeds included). */
  atPool: z.number().positive(),
  /** How fast acceptance falls: 0 holds it constant, 1 halves it each time the pool doubles. */
  exponent: z.number().min(0),
  /**
   * The ceiling: the highest acceptance measured (the first iterations, on a small pool, fall slower
   * than the power law that fits the rest of a run).
   */
  maxRate: z.number().min(0).max(1),
  /** The pool sizes the curve was fitted over (beyond them it is an extrapolation). */
  fittedPools: z.tuple([z.number().nonnegative(), z.number().nonnegative()]),
});
export type AcceptanceCurve = z.infer<typeof AcceptanceCurve>;

/** The acceptance a curve gives at a pool size. */
export function acceptanceAt(curve: AcceptanceCurve, pool: number): number {
  return Math.min(curve.maxRate, curve.rate * (Math.max(1, pool) / curve.atPool) ** -curve.exponent);
}

/**
 * Mean acceptance over a batch of `candidates` gated against a pool of `pool` instructions: the pool
 * grows with each accepted one while the batch is gated, so the rate is read at the pool size the
 * middle of the batch meets (one fixed-point step, enough at the curve's slopes).
 */
export function batchAcceptance(curve: AcceptanceCurve, pool: number, candidates: number): number {
  const first = acceptanceAt(curve, pool);
  return acceptanceAt(curve, pool + (candidates * first) / 2);
}

/** One iteration's gate outcome: its candidates and accepted ones, and the pool it started from. */
export interface GateOutcome {
  poolAtStart: number;
  candidates: number;
  accepted: number;
}

/**
 * Fits a curve to iterations' gate outcomes: weighted least squares of ln(acceptance) on ln(pool),
 * the pool read where the middle of each iteration's batch meets it. Iterations that accepted nothing
 * (no logarithm) or had no candidates are left out; undefined when fewer than two distinct pools
 * remain. A fitted rise (negative slope, noise on a flat run) is read as constant acceptance.
 */
export function fitAcceptanceCurve(outcomes: readonly GateOutcome[]): AcceptanceCurve | undefined {
  const points = outcomes
    .filter((o) => o.candidates > 0 && o.accepted > 0)
    .map((o) => ({
      x: Math.log(o.poolAtStart + o.accepted / 2),
      y: Math.log(o.accepted / o.candidates),
      w: o.candidates,
    }));
  if (new Set(points.map((p) => p.x)).size < 2) return undefined;
  const total = points.reduce((s, p) => s + p.w, 0);
  const mx = points.reduce((s, p) => s + p.w * p.x, 0) / total;
  const my = points.reduce((s, p) => s + p.w * p.y, 0) / total;
  const sxy = points.reduce((s, p) => s + p.w * (p.x - mx) * (p.y - my), 0);
  const sxx = points.reduce((s, p) => s + p.w * (p.x - mx) ** 2, 0);
  const slope = sxy / sxx;
  const pools = points.map((p) => Math.exp(p.x));
  const fittedPools: [number, number] = [Math.min(...pools), Math.max(...pools)];
  if (slope >= 0) {
    const accepted = outcomes.reduce((s, o) => s + o.accepted, 0);
    const candidates = outcomes.reduce((s, o) => s + o.candidates, 0);
    const rate = Math.min(1, accepted / candidates);
    return AcceptanceCurve.parse({ rate, atPool: Math.exp(mx), exponent: 0, maxRate: rate, fittedPools });
  }
  // The fitted line passes through the weighted means: the reference point.
  return AcceptanceCurve.parse({
    rate: Math.min(1, Math.exp(my)),
    atPool: Math.exp(mx),
    exponent: -slope,
    maxRate: Math.min(1, Math.max(...points.map((p) => Math.exp(p.y)))),
    fittedPools,
  });
}

/**
 * A curve of `shape`'s form scaled to pass through one measured point: a run known only by its totals
 * (a `summary.json`) gives its overall acceptance, read at the pool its middle accepted candidate met;
 * a profile's defaults give the rate measured on a short run.
 */
export function scaleCurve(shape: AcceptanceCurve, rate: number, atPool: number): AcceptanceCurve {
  const at = acceptanceAt(shape, atPool);
  const factor = at > 0 ? rate / at : 0;
  return AcceptanceCurve.parse({
    ...shape,
    rate: Math.min(1, shape.rate * factor),
    maxRate: Math.min(1, shape.maxRate * factor),
  });
}

/**
 * The curve measured on the offline model (2026-12-01): a `default` run from the 192 shipped seeds
 * to a 10,191-task pool, 60 iterations, read back and fitted with `estimate --data-dir`:
 *
 *     npm start -- --fresh --data-dir .local/proj-10k --input run.json
 *     # run.json: {"target": 10000, "maxIterations": 60, "diversityPlateau": false, "seed": "proj-curve"}
 *
 * Its acceptance fell from 72% (pool 192) to 8% (pool 10.7K), 16% over the run; past a 1.5K pool the
 * power law is within ±15% of every iteration's rate; below it the fit overshoots and the ceiling
 * (72%) holds it. Limits: the offline model draws from word banks of a few hundred verb–noun pairs, so
 * its pool saturates faster than a real model's: for a real model this curve errs pessimistic (more
 * calls, more time), and beyond 10.7K it is an extrapolation. Calibrate from a real run's data folder.
 */
export const DEFAULT_ACCEPTANCE_CURVE: AcceptanceCurve = {
  rate: 0.1381,
  atPool: 6220,
  exponent: 0.7993,
  maxRate: 0.721,
  fittedPools: [370, 10_739],
};
