import { invalidConfig } from '../../lib/cni/errors.js';
import type { Context, PluginSpec } from '../../lib/cni/skel.js';
import type { Result } from '../../lib/cni/types.js';
import { checkShaping, requestedBandwidth, shapeTraffic, unshapeTraffic } from '../common/bandwidth.js';

// tether-bandwidth: the bandwidth capability as a chained plugin after any veth plugin (tether's or the
// reference ones). Limits come from runtimeConfig.bandwidth, or the same fields in the plugin's config.

function prev(ctx: Context): Result {
  if (!ctx.prevResult) throw invalidConfig('prevResult', 'is required: tether-bandwidth is a chained plugin and runs after the plugin that made the interface');
  return ctx.prevResult;
}

export const bandwidthPlugin: PluginSpec = {
  name: 'tether-bandwidth',
  about: 'tether-bandwidth: ingress and egress rate limits (bandwidth capability) with tbf over netlink, chained after any veth plugin',
  parseConfig(conf, command) {
    if (command === 'ADD' || command === 'CHECK') requestedBandwidth({ conf }, true); // a bad limit is refused up front
    return conf;
  },
  async add(ctx) {
    const r = prev(ctx);
    await shapeTraffic(ctx, r, requestedBandwidth(ctx, true));
    return { ...r, cniVersion: ctx.version };
  },
  async del(ctx) { await unshapeTraffic(ctx); },
  async check(ctx) { await checkShaping(ctx, prev(ctx), requestedBandwidth(ctx, true)); },
  status() { /* nothing to be ready for */ },
};
