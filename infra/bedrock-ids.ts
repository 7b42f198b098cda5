/** Bedrock model ids, without the SDK: what the stack's grants and the local IAM check both need. */

/** The model a cross-region inference profile id (`us.`, `eu.`, `apac.`, `global.` …) routes to, if it is one. */
export const inferenceProfileModel = (modelId: string) =>
  /^(us|eu|apac|us-gov|ca|jp|au|global)\.(.+)$/.exec(modelId)?.[2];
