import { describe, expect, it } from 'vitest';
import { numpyMean, pairwiseSum } from '../../../functions/shared/engine/mean.ts';
import { fMeasure, lcsLength, rougeL, tokenize } from '../../../functions/shared/engine/rouge.ts';
import { referenceTokenize, scorerScore } from '../../support/rouge-reference.ts';

describe('tokenize', () => {
  it('lower-cases and splits on every run of characters outside [a-z0-9]', () => {
    const tokens = tokenize("Don't stop: it's 2-for-1 at Joe's_CAFÉ!");

    expect(tokens).toEqual(['don', 't', 'stop', 'it', 's', '2', 'for', '1', 'at', 'joe', 's', 'caf']);
  });

  it('yields no tokens for text in other scripts, or for empty text', () => {
    expect(tokenize('写一首关于秋天的诗')).toEqual([]);
    expect(tokenize('Привет, мир')).toEqual([]);
    expect(tokenize('')).toEqual([]);
  });

  it('keeps the ASCII letters that Unicode lower-casing produces, as Python does', () => {
    // 'İ'.lower() is 'i' + U+0307 and the Kelvin sign lower-cases to 'k', in Python and in JavaScript.
    expect(tokenize('İNDEX 5\u212A')).toEqual(['i', 'ndex', '5k']);
  });

  it('agrees with the step-by-step transliteration of rouge-score on mixed text', () => {
    const texts = ['  Hello,\tWORLD\n', 'a\u00a0b', 'ｆｕｌｌ width', 'x_y-z', 'ß straße', '12.5%'];

    for (const text of texts) expect(tokenize(text), text).toEqual(referenceTokenize(text));
  });
});

describe('lcsLength', () => {
  it('finds the longest common subsequence, not substring', () => {
    expect(lcsLength('ABCBDAB'.split(''), 'BDCABA'.split(''))).toBe(4);
    expect(lcsLength(['a', 'b', 'c'], ['c', 'b', 'a'])).toBe(1);
  });

  it('is 0 when either side is empty or nothing is shared', () => {
    expect(lcsLength([], ['a'])).toBe(0);
    expect(lcsLength(['a'], [])).toBe(0);
    expect(lcsLength(['a', 'b'], ['c', 'd'])).toBe(0);
  });
});

describe('rougeL', () => {
  it('scores "The quick brown fox" against "the fox" as 2/3 (P = 1, R = 1/2)', () => {
    expect(rougeL('The quick brown fox', 'the fox')).toBe(0.6666666666666666);
  });

  it('is symmetric, 1 for the same tokens whatever the case and punctuation, 0 without tokens', () => {
    expect(rougeL('a b c d', 'b d e')).toBe(rougeL('b d e', 'a b c d'));
    expect(rougeL('Write a poem.', 'write a POEM')).toBe(1);
    expect(rougeL('写一首诗', 'write a poem')).toBe(0);
    expect(rougeL('', '')).toBe(0);
  });

  it('gives exactly 0.7 for an LCS of 7 between two 10-token texts', () => {
    const target = 'a b c d e f g h i j';
    const prediction = 'a b c d e f g x y z';

    expect(rougeL(target, prediction)).toBe(0.7);
  });

  it('gives 0.7000000000000001 for an LCS of 7 between 9 and 11 tokens, as Python does', () => {
    // Mathematically 2·7 / (9 + 11) = 0.7, but rouge-score's operations round up; the gate must too.
    const target = 'a b c d e f g h i';
    const prediction = 'a b c d e f g x y z w';

    expect(rougeL(target, prediction)).toBe(0.7000000000000001);
    expect(scorerScore(target, prediction).fmeasure).toBe(0.7000000000000001);
  });

  it('computes precision against the prediction and recall against the target', () => {
    const score = scorerScore('a b c d', 'a b');

    expect(score).toEqual({ precision: 1, recall: 0.5, fmeasure: 0.6666666666666666 });
    expect(fMeasure(2, 4, 2)).toBe(score.fmeasure);
    expect(fMeasure(0, 4, 2)).toBe(0);
    expect(fMeasure(0, 0, 0)).toBe(0);
  });
});

describe('numpyMean', () => {
  const values = (n: number) => Array.from({ length: n }, (_, i) => ((i * 7919) % 1009) / 1013);

  it('equals float(np.mean(values)) of NumPy 2.4 to the last bit', () => {
    // Printed by Python: float(np.mean([((i * 7919) % 1009) / 1013 for i in range(n)])).
    expect(numpyMean(values(7))).toBe(0.40064870963192784);
    expect(numpyMean(values(100))).toBe(0.5020631786771965);
    expect(numpyMean(values(1000))).toBe(0.4982013820335637);
    expect(numpyMean(values(52001))).toBe(0.4975295581015575);
  });

  it('differs from a left-to-right sum where NumPy does', () => {
    const data = values(52001);
    const naive = data.reduce((sum, x) => sum + x, 0) / data.length;

    expect(naive).toBe(0.4975295581015565);
    expect(numpyMean(data)).not.toBe(naive);
  });

  it('sums a slice of a typed array', () => {
    const data = Float64Array.from([9, 1, 2, 3, 9]);

    expect(pairwiseSum(data, 1, 3)).toBe(6);
  });
});
