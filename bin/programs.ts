/** Every program in the multicall binary. Each is imported only when chosen, so an exec pays for one. */
export type Program = (argv: string[]) => Promise<number>;

export const programs: Record<string, () => Promise<Program>> = {
  cnictl: async () => (await import('../cnictl/cli.js')).cnictlMain,
  'tether-bridge': async () => {
    const [{ runPlugin }, { registerInProcess }, { bridgePlugin }, { ipamPlugin }] = await Promise.all([
      import('../lib/cni/skel.js'), import('../lib/cni/invoke.js'), import('../plugins/bridge/plugin.js'), import('../ipam/plugin.js'),
    ]);
    // tether-bridge with tether-ipam pays no second exec: the IPAM plugin runs in this process.
    registerInProcess('tether-ipam', ipamPlugin);
    return () => runPlugin(bridgePlugin);
  },
  'tether-bgp-route': async () => {
    const [{ runPlugin }, { registerInProcess }, { bgpRoutePlugin }, { ipamPlugin }] = await Promise.all([
      import('../lib/cni/skel.js'), import('../lib/cni/invoke.js'), import('../plugins/bgp-route/plugin.js'), import('../ipam/plugin.js'),
    ]);
    registerInProcess('tether-ipam', ipamPlugin);
    return () => runPlugin(bgpRoutePlugin);
  },
  'tether-ipam': async () => {
    const [{ runPlugin }, { ipamPlugin }] = await Promise.all([import('../lib/cni/skel.js'), import('../ipam/plugin.js')]);
    return () => runPlugin(ipamPlugin);
  },
  'tether-vxlan': async () => {
    const [{ runPlugin }, { registerInProcess }, { bridgePlugin }, { ipamPlugin }, { vxlanPlugin }] = await Promise.all([
      import('../lib/cni/skel.js'), import('../lib/cni/invoke.js'), import('../plugins/bridge/plugin.js'), import('../ipam/plugin.js'), import('../plugins/vxlan/plugin.js'),
    ]);
    // The bridge work is tether-bridge itself, run in this process on a generated config.
    registerInProcess('tether-bridge', bridgePlugin);
    registerInProcess('tether-ipam', ipamPlugin);
    return () => runPlugin(vxlanPlugin);
  },
  'tether-portmap': async () => {
    const [{ runPlugin }, { portmapPlugin }] = await Promise.all([import('../lib/cni/skel.js'), import('../plugins/portmap/plugin.js')]);
    return () => runPlugin(portmapPlugin);
  },
  'tether-bandwidth': async () => {
    const [{ runPlugin }, { bandwidthPlugin }] = await Promise.all([import('../lib/cni/skel.js'), import('../plugins/bandwidth/plugin.js')]);
    return () => runPlugin(bandwidthPlugin);
  },
  tetherd: async () => (await import('../tetherd/main.js')).tetherdMain,
  // Not linked: the harness's traffic endpoint, run as `tether probe ...` inside test namespaces.
  probe: async () => (await import('../conformance/probe.js')).probeMain,
  // Not linked: the BGP speaker on its own (tetherd hosts it in-process), `tether bgp-speaker --config FILE`.
  'bgp-speaker': async () => (await import('../lib/bgp/program.js')).bgpSpeakerMain,
};

/** The names dist/bin gets as links to the binary. */
export const LINKS = ['cnictl', 'tether-bridge', 'tether-ipam', 'tether-bgp-route', 'tether-vxlan', 'tether-portmap', 'tether-bandwidth', 'tetherd'];
