// Entry of a gate worker thread (see gate-threads.ts): loads the TypeScript worker through tsx, which a
// worker thread does not inherit from the thread that starts it.
import { register } from 'tsx/esm/api';

register();
await import('./gate-worker.ts');
