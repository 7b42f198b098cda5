/**
 * The judge's model id (run input `judgeModel`): any text model id (`models/index.ts`), `none` for no
 * judge; by default the run's own model.
 */

/** `judgeModel` that turns the judge off. */
export const NO_JUDGE = 'none';

/**
 * The model that judges a run's tasks, or `undefined` when none does: the judge turned off, or the state
 * of a run started before the judge existed (its `judgeModel` was never resolved).
 */
export const judgeModelOf = (config: { judgeModel?: string }): string | undefined =>
  config.judgeModel === undefined || config.judgeModel === NO_JUDGE ? undefined : config.judgeModel;

/**
 * The model that writes a run's explained responses (run input `teacherModel`, see
 * `generate-instances/explain.ts`), or `undefined` when the run's responses are direct.
 */
export const teacherModelOf = (config: {
  responseStyle?: string;
  teacherModel?: string;
  model: string;
}): string | undefined =>
  config.responseStyle === 'explained' ? (config.teacherModel ?? config.model) : undefined;
