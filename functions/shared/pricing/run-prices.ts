/** The price table a run uses: the shipped one, with the run's override file (`priceTableKey`) merged over it. */
import { NotFound } from '../errors.ts';
import type { ObjectStore } from '../ports.ts';
import { type PriceTable, shippedPrices, withOverride } from './pricing.ts';

export async function priceTable(key: string | undefined, objects: ObjectStore): Promise<PriceTable> {
  if (!key) return shippedPrices();
  const text = await objects.getText(key);
  if (text === undefined) throw new NotFound(`Price table s3://…/${key} does not exist`);
  return withOverride(shippedPrices(), JSON.parse(text), key);
}
