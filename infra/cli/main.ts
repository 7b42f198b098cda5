/**
 * The `selfinstruct` command (`npm run cli -- <command>`; `npx selfinstruct` where installed).
 * User errors print one line and exit 1; only unexpected failures show a stack trace.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { SeedFileInvalid, SelfInstructError } from '../../functions/shared/errors.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';
import { AlpacaTask, RunInput, SeedTask } from '../../functions/shared/schemas.ts';
import { dedupCommand } from './dedup.ts';
import { resolveDeployed, serveCommand } from './deployed.ts';
import { estimateCommand } from './estimate.ts';
import { exportCommand } from './export.ts';
import { repairCommand } from './repair.ts';
import { reportCommand } from './report.ts';
import { runCommand } from './run.ts';
import { statusCommands } from './status.ts';

export function program(): Command {
  const cli = new Command('selfinstruct')
    .description('Grow instruction-tuning datasets the Self-Instruct way, on AWS Step Functions or locally')
    .showHelpAfterError()
    .exitOverride();
  cli.addCommand(runCommand());
  cli.addCommand(dedupCommand());
  cli.addCommand(estimateCommand());
  cli.addCommand(exportCommand());
  cli.addCommand(reportCommand());
  cli.addCommand(repairCommand());
  for (const command of statusCommands(async (options) => (await resolveDeployed(options)).stateMachineArn)) {
    cli.addCommand(command);
  }
  cli.addCommand(serveCommand());
  cli
    .command('schema')
    .description('Print the JSON Schema of the run input (the Step Functions console input)')
    .action(() => {
      console.log(JSON.stringify(runInputJsonSchema(), null, 2));
    });
  const seeds = cli.command('seeds').description('Seed files');
  seeds
    .command('validate <file>')
    .description(
      'Check a seed file (Self-Instruct JSON Lines or Alpaca JSON) and list every problem with its line',
    )
    .action((file: string) => {
      const text = readFileSync(file, 'utf8');
      const schema = text.trimStart().startsWith('[') ? AlpacaTask : SeedTask;
      const tasks = parseRecords(text, schema, file, (problems) => new SeedFileInvalid(problems));
      console.log(`${file}: ${tasks.length} valid tasks`);
    });
  return cli;
}

/** The run input's JSON Schema, generated from the zod schema (also committed as docs/run-input.schema.json). */
export function runInputJsonSchema() {
  return {
    title: 'Self-Instruct run input',
    ...z.toJSONSchema(RunInput, { io: 'input' }),
  };
}

export async function main(argv = process.argv): Promise<number> {
  // The SDK's notice that its 2027 releases need Node 22 is in the README; not on every command.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  try {
    await program().parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof SelfInstructError || (error as { code?: string }).code === 'ENOENT') {
      console.error(`error: ${(error as Error).message}`);
      return 1;
    }
    throw error;
  }
}

if (process.argv[1] && /main\.(ts|js|mjs)$/.test(process.argv[1])) {
  process.exitCode = await main();
}
