// The tests' pacing is the lab's (lib/pace.ts): one measure of how busy the machine is.
export { paced, slowness } from '../../lib/pace.js';
