// Loaded with `node --import`: any import of aws-cdk-lib or of the local synthesis module fails the
// process, so a test can prove that a command never synthesizes the stack nor loads CDK.
import { register } from 'node:module';

const hooks = `
export async function resolve(specifier, context, next) {
  if (/^aws-cdk-lib(\\/|$)/.test(specifier) || /infra\\/local\\/synth\\.ts$|\\/synth\\.ts$/.test(specifier)) {
    throw new Error('forbidden import: ' + specifier);
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
