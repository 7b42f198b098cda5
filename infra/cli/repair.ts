/**
 * `selfinstruct repair <pool>`: finishes or removes what dead runs left in a pool of the local stack
 * (staged tasks of iterations that never committed, markers of committed ones, a missing snapshot, an
 * abandoned lease), so counts and exports never include uncounted work. The next run on a pool does the
 * same in "Prepare run"; this does it now, and says what it found.
 */
import { Command } from 'commander';
import { NotFound } from '../../functions/shared/errors.ts';
import { describeRepair, type PoolRepair, repairPool } from '../../functions/shared/pool-commit.ts';
import { PoolName } from '../../functions/shared/schemas.ts';
import { LocalStack } from '../local/stack.ts';

/** Repairs `pool` in the local data folder `dataDir`. */
export async function repairLocal(pool: string, dataDir: string): Promise<PoolRepair> {
  const name = PoolName.safeParse(pool);
  if (!name.success) throw new NotFound(`No pool "${pool}": pool names ${name.error.issues[0]?.message}`);
  const stack = await LocalStack.start({ dataDir });
  try {
    // One process at a time opens a local data folder (LevelDB's lock): a run holding the lease now is dead.
    return await repairPool(stack.pool, stack.objects, pool, {
      by: `repair-${new Date().toISOString()}`,
      ended: async () => true,
    });
  } finally {
    await stack.close();
  }
}

export function repairCommand(): Command {
  return new Command('repair')
    .argument('<pool>', 'the pool to repair')
    .description('Finish or remove what dead runs left in a local pool, and say what was repaired')
    .option('--data-dir <dir>', 'local data', '.local/data')
    .action(async (pool: string, options: { dataDir: string }) => {
      const report = await repairLocal(pool, options.dataDir);
      const lines = describeRepair(report);
      console.log(
        lines.length === 0 ? `Pool "${pool}": nothing to repair` : `Pool "${pool}":\n  ${lines.join('\n  ')}`,
      );
    });
}
