/**
 * In-process synthesis of the stack for the local runner: the app `cdk synth` builds, with the context
 * of `cdk.json` (as the CDK CLI passes it), asset bundling skipped (or done into `bundleTo`), and CDK's
 * built-in CloudFormation template validation off: it takes most of a synthesis (about 17 of 21 s here)
 * and checks nothing the local runner relies on. `cdk synth`, `cdk deploy` and the infrastructure tests
 * keep it. Loaded only when the template cache misses (`template.ts`), because aws-cdk-lib is slow to load.
 */
import { readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { buildApp } from '../app.ts';
import { PROJECT_ROOT } from '../project.ts';
import type { CfnTemplate } from './template.ts';

/** The `context` of the project's `cdk.json`: settings and feature flags, as `cdk synth` applies them. */
export function cdkJsonContext(root = PROJECT_ROOT): Record<string, unknown> {
  const json = JSON.parse(readFileSync(path.join(root, 'cdk.json'), 'utf8')) as { context?: object };
  return { ...json.context };
}

/**
 * Synthesizes the stack and returns its template (seconds: it loads aws-cdk-lib and runs cdk-nag).
 * With `bundleTo`, the functions are bundled by esbuild into that folder, as `cdk deploy` would, and each
 * function resource's `aws:asset:path` metadata names its bundle's folder; without it the cloud assembly
 * is a temporary folder, removed here.
 */
export function synthesizeTemplate(
  context: Record<string, unknown> = {},
  bundleTo?: string,
): { template: CfnTemplate; outdir: string } {
  const { app, stack } = buildApp(
    new App({
      outdir: bundleTo,
      builtinCloudFormationValidation: false,
      context: {
        ...cdkJsonContext(),
        ...(bundleTo ? { 'aws:cdk:enable-asset-metadata': true } : { 'aws:cdk:bundling-stacks': [] }),
        ...context,
      },
    }),
  );
  const assembly = app.synth();
  const template = assembly.getStackByName(stack.stackName).template as CfnTemplate;
  if (!bundleTo) rmSync(assembly.directory, { recursive: true, force: true });
  return { template, outdir: assembly.directory };
}
