/**
 * Money as the CLI, the run report and the dataset card print it: US dollars at one precision, four
 * decimals (a run's cost is often a fraction of a cent). An amount that rounds to zero but isn't is
 * shown as `<$0.0001`, never as a misleading `$0.0000`.
 */
export function formatUsd(usd: number): string {
  if (usd > 0 && usd < 0.00005) return '<$0.0001';
  return `$${usd.toFixed(4)}`;
}
