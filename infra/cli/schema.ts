/** `selfinstruct schema`: the run input's JSON Schema (also committed as docs/run-input.schema.json). */
import { Command } from 'commander';
import { z } from 'zod';
import { RunInput } from '../../functions/shared/schemas.ts';

/** The run input's JSON Schema, generated from the zod schema: the Step Functions console's input. */
export function runInputJsonSchema() {
  return {
    title: 'Self-Instruct run input',
    ...z.toJSONSchema(RunInput, { io: 'input' }),
  };
}

/** `schema`, for `program()` in main.ts. */
export function schemaCommand(): Command {
  return new Command('schema').action(() => {
    console.log(JSON.stringify(runInputJsonSchema(), null, 2));
  });
}
