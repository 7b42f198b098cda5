/**
 * Where the project is and how the template names a function's handler module: shared by the CDK app,
 * which writes them, and the local stack, which reads them without loading aws-cdk-lib.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root: stage entries are `functions/<stage>/handler.ts` below it. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** CloudFormation metadata key that names a function's handler module, read by the local runner. */
export const ENTRY_METADATA = 'SelfInstruct:Entry';
