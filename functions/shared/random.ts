/** Seeded randomness, so that runs with the offline model and prompt sampling are reproducible. */
import seedrandom from 'seedrandom';

export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** `k` distinct items of `items`, in random order. */
  sample<T>(items: readonly T[], k: number): T[];
  /** A shuffled copy of `items`. */
  shuffle<T>(items: readonly T[]): T[];
}

/** A deterministic random source from any string seed. */
export function createRng(seed: string): Rng {
  const prng = seedrandom(seed);
  const int = (n: number) => Math.floor(prng() * n);
  const shuffle = <T>(items: readonly T[]): T[] => {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  };
  return {
    next: () => prng(),
    int,
    shuffle,
    sample: (items, k) => shuffle(items).slice(0, Math.max(0, Math.min(k, items.length))),
  };
}
