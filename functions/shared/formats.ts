/**
 * The dataset formats the pipeline writes: the seed-file format with provenance, flat records, Alpaca.
 * They moved to `exports/formats.ts` with the other export formats; this module keeps their old import path.
 */
export { type SeedFormatTask, toAlpaca, toRecords, toSeedFormat } from './exports/formats.ts';
