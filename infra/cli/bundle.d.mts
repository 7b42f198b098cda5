/** Types of `bundle.mjs` (plain JavaScript: it runs before any TypeScript can be loaded). */
export declare const PROJECT_ROOT: string;
export declare const BUNDLE_GLOBAL: unique symbol;
export declare function cliBundle(root?: string, options?: { onBuild?: () => void }): Promise<string>;
