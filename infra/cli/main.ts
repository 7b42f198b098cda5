/**
 * The `selfinstruct` command (`npm run cli -- <command>`; `npx selfinstruct` where installed).
 * Commands are loaded lazily: only the one being run is imported (the top-level help lists them from
 * the table below), so `--help`, `status` or `export` never load what `run` needs (aws-cdk-lib among it).
 * User errors print one `error:` line and exit 1; only unexpected failures show a stack trace.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { SelfInstructError } from '../../functions/shared/errors.ts';
import { PROJECT_ROOT } from '../project.ts';

/** One command: its name and description (the one truth of both), and how to build it. */
interface CommandEntry {
  name: string;
  description: string;
  load(): Promise<Command>;
}

const stateMachineArn = async (options: { stateMachineArn?: string }) =>
  (await (await import('./deployed.ts')).resolveDeployed(options)).stateMachineArn;

/** Every command, in the order the help lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'run',
    description: 'Run the pipeline on the local stack (local S3 + DynamoDB, the synthesized state machine)',
    load: async () => (await import('./run.ts')).runCommand(),
  },
  {
    name: 'status',
    description: 'Where a run stands',
    load: async () => (await import('./status.ts')).statusCommand(stateMachineArn),
  },
  {
    name: 'watch',
    description: 'Follow a run until it ends',
    load: async () => (await import('./status.ts')).watchCommand(stateMachineArn),
  },
  {
    name: 'redrive',
    description:
      'Resume a failed deployed run where it failed (Step Functions RedriveExecution) and follow it',
    load: async () => (await import('./redrive.ts')).redriveCommand(stateMachineArn),
  },
  {
    name: 'estimate',
    description: 'Estimate what a run that adds --target tasks costs (model and AWS), before any model call',
    load: async () => (await import('./estimate.ts')).estimateCommand(),
  },
  {
    name: 'export',
    description:
      'Write a run’s (or with --pool, a pool’s) tasks as training files with a dataset card: jsonl, alpaca, messages, bedrock',
    load: async () => (await import('./export.ts')).exportCommand(),
  },
  {
    name: 'report',
    description: 'Write a run report (report.html with charts and samples, stats.json) from the local stack',
    load: async () => (await import('./report.ts')).reportCommand(),
  },
  {
    name: 'import',
    description:
      'Bring Self-Instruct, Alpaca or tasks.jsonl files into a local pool (each recognised by its content)',
    load: async () => (await import('./import.ts')).importCommand(),
  },
  {
    name: 'repair',
    description: 'Finish or remove what dead runs left in a local pool, and say what was repaired',
    load: async () => (await import('./repair.ts')).repairCommand(),
  },
  {
    name: 'dedup',
    description: 'Filter candidate instructions and gate them against a pool with ROUGE-L, in order',
    load: async () => (await import('./dedup.ts')).dedupCommand(),
  },
  {
    name: 'seeds',
    description: 'Seed files: `seeds validate <file>`',
    load: async () => (await import('./seeds.ts')).seedsCommand(),
  },
  {
    name: 'schema',
    description: 'Print the JSON Schema of the run input (the Step Functions console input)',
    load: async () => (await import('./schema.ts')).schemaCommand(),
  },
  {
    name: 'serve',
    description: 'Start the local stack with a Step Functions API endpoint, standing in for AWS',
    load: async () => (await import('./deployed.ts')).serveCommand(),
  },
];

/** The package's version (`--version`). */
export const VERSION = (
  JSON.parse(readFileSync(`${PROJECT_ROOT}/package.json`, 'utf8')) as { version: string }
).version;

/**
 * The program for `argv`: the command it names is loaded in full, every other one only by name and
 * description (enough for the top-level help).
 */
export async function program(argv: readonly string[] = process.argv): Promise<Command> {
  const cli = new Command('selfinstruct')
    .description('Grow instruction-tuning datasets the Self-Instruct way, on AWS Step Functions or locally')
    .version(VERSION, '-V, --version')
    .showHelpAfterError()
    .exitOverride();
  const words = argv.slice(2).filter((word) => !word.startsWith('-'));
  const wanted = words[0] === 'help' ? words[1] : words[0];
  for (const entry of COMMANDS) {
    const command = entry.name === wanted ? await entry.load() : new Command(entry.name);
    cli.addCommand(command.description(entry.description));
  }
  return cli;
}

export async function main(argv = process.argv): Promise<number> {
  // The SDK's notice that its 2027 releases need Node 22 is in the README; not on every command.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  try {
    await (await program(argv)).parseAsync(argv);
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
