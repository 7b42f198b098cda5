/**
 * The synthesized CloudFormation template as the local stack reads it: the stack is synthesized
 * in-process (asset bundling skipped), and the few intrinsic functions the template uses are resolved
 * against local names, so the state machine definition, the functions' environments, the table's keys
 * and the bucket come from the one source that is also deployed.
 */
import { App } from 'aws-cdk-lib';
import { buildApp } from '../app.ts';

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
}

/**
 * Synthesizes the stack and returns its template (takes a few seconds: it loads aws-cdk-lib).
 * With `bundleTo`, the functions are bundled by esbuild into that folder, as `cdk deploy` would, and
 * each function resource's `aws:asset:path` metadata names its bundle's folder.
 */
export function synthesizeTemplate(
  context: Record<string, unknown> = {},
  bundleTo?: string,
): { template: CfnTemplate; outdir: string } {
  const { app, stack } = buildApp(
    new App({
      outdir: bundleTo,
      context: bundleTo
        ? { 'aws:cdk:enable-asset-metadata': true, ...context }
        : { 'aws:cdk:bundling-stacks': [], ...context },
    }),
  );
  const assembly = app.synth();
  return {
    template: assembly.getStackByName(stack.stackName).template as CfnTemplate,
    outdir: assembly.directory,
  };
}

export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_REGION = 'us-east-1';

/** What local resource a logical id stands for: its name (`Ref`) and ARN (`Fn::GetAtt …Arn`). */
export interface LocalNames {
  ref(logicalId: string): string;
  arn(logicalId: string): string;
  /** The region `AWS::Region` stands for. @default LOCAL_REGION */
  region?: string;
}

/** Resolves `Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub` and `Fn::Select` in `value`. */
export function resolveIntrinsics(value: unknown, names: LocalNames): unknown {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': names.region ?? LOCAL_REGION,
    'AWS::AccountId': LOCAL_ACCOUNT,
    'AWS::URLSuffix': 'amazonaws.com',
    'AWS::StackName': 'SelfInstruct',
  };
  const ref = (id: string) => pseudo[id] ?? names.ref(id);
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const entries = Object.entries(node);
    if (entries.length === 1) {
      const [key, arg] = entries[0] as [string, unknown];
      switch (key) {
        case 'Ref':
          return ref(arg as string);
        case 'Fn::GetAtt': {
          const [id, attribute] = arg as [string, string];
          if (attribute === 'Arn') return names.arn(id);
          throw new Error(`local stack: unsupported Fn::GetAtt ${id}.${attribute}`);
        }
        case 'Fn::Join': {
          const [separator, parts] = arg as [string, unknown[]];
          return (walk(parts) as unknown[]).join(separator);
        }
        case 'Fn::Select': {
          const [index, list] = arg as [number, unknown[]];
          return (walk(list) as unknown[])[Number(index)];
        }
        case 'Fn::Sub': {
          const [text, vars] = (typeof arg === 'string' ? [arg, {}] : arg) as [
            string,
            Record<string, unknown>,
          ];
          return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
            if (name in vars) return String(walk(vars[name]));
            const [id, attribute] = name.split('.');
            return attribute === 'Arn' ? names.arn(id as string) : ref(name);
          });
        }
      }
      if (key.startsWith('Fn::')) throw new Error(`local stack: unsupported intrinsic ${key}`);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, walk(v)]));
  };
  return walk(value);
}

/** The logical ids of the template's resources of one type. */
export const resourcesOfType = (template: CfnTemplate, type: string) =>
  Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
