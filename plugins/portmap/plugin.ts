import { invalidConfig } from '../../lib/cni/errors.js';
import type { Context, PluginSpec } from '../../lib/cni/skel.js';
import type { Result } from '../../lib/cni/types.js';
import { checkPorts, gcPorts, publishPorts, requestedPorts, unpublishPorts } from '../common/ports.js';

// tether-portmap: the portMappings capability as a chained plugin after any main plugin (tether's or
// the reference ones), in the same nftables table the tether main plugins use.

function prev(ctx: Context): Result {
  if (!ctx.prevResult) throw invalidConfig('prevResult', 'is required: tether-portmap is a chained plugin and runs after the plugin that made the interface');
  return ctx.prevResult;
}

export const portmapPlugin: PluginSpec = {
  name: 'tether-portmap',
  about: 'tether-portmap: published ports (portMappings capability) as nftables map elements, chained after any plugin',
  parseConfig(conf, command) {
    if (command === 'ADD' || command === 'CHECK') requestedPorts({ conf } as Context); // a bad portMappings entry is refused up front
    return conf;
  },
  async add(ctx) {
    const r = prev(ctx);
    await publishPorts(ctx, r);
    return { ...r, cniVersion: ctx.version };
  },
  async del(ctx) { await unpublishPorts(ctx); },
  async check(ctx) { await checkPorts(ctx, prev(ctx)); },
  status() { /* nothing to be ready for: the table is made on first use */ },
  async gc(ctx, valid) { await gcPorts(ctx, valid); },
};
