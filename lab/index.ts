// The lab with tether's own modes loaded: each mode registers itself, so importing it is what makes
// `--mode vxlan` and `--mode bgp` known. Programs and tests that start labs import this module.
import './vxlan.js';
import './bgp.js';

export * from './multinode.js';
