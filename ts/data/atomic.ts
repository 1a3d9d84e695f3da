/** The project's atomic writer lives in ts/run/atomic.ts; re-exported for the data modules. */
export { writeFileAtomic } from '../run/atomic.js';
