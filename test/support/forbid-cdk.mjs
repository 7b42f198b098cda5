// Loaded with `node --import`: any import of aws-cdk-lib or of the local synthesis module fails the
// process, so a test can prove that a command never synthesizes the stack nor loads CDK. From the CLI's
// bundle (`infra/cli/bundle.mjs`), the synthesis module is the chunk `chunks/synth-<hash>.mjs`.
import { register } from 'node:module';

const hooks = `
export async function resolve(specifier, context, next) {
  if (/^aws-cdk-lib(\\/|$)/.test(specifier) || /infra\\/local\\/synth\\.ts$|\\/synth\\.ts$|\\/synth-[A-Z0-9]+\\.mjs$/.test(specifier)) {
    throw new Error('forbidden import: ' + specifier);
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
