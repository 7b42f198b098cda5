import { createRng } from '../../functions/shared/random.ts';

/**
 * Random instruction-like texts over a small vocabulary, so that ties, high scores and near-duplicates
 * are frequent; some long (past 32 and 64 tokens), some without any token.
 */
export function workload(seed: string, poolSize: number, candidates: number, short = false) {
  const rng = createRng(seed);
  const vocabulary = Array.from({ length: 60 }, (_, i) => `w${i}`);
  const word = () => vocabulary[Math.floor(vocabulary.length * rng.next() ** 2)] as string;
  const texts: string[] = [];
  const next = (): string => {
    const roll = rng.next();
    if (roll < 0.03) return '写一首关于秋天的诗';
    if (roll < 0.35 && texts.length > 0) {
      const words = (texts[rng.int(texts.length)] as string).split(' ');
      const at = rng.int(words.length);
      if (rng.next() < 0.5) words.splice(at, 1);
      else words.splice(at, 0, word());
      return words.join(' ');
    }
    const length = short ? 2 + rng.int(8) : roll < 0.4 ? 33 + rng.int(50) : 3 + rng.int(25);
    return Array.from({ length }, word).join(' ');
  };
  for (let i = 0; i < poolSize + candidates; i++) texts.push(next());
  return { pool: texts.slice(0, poolSize), candidates: texts.slice(poolSize) };
}
