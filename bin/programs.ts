/** Every program in the multicall binary. Each is imported only when chosen, so an exec pays for one. */
export type Program = (argv: string[]) => Promise<number>;

export const programs: Record<string, () => Promise<Program>> = {
  cnictl: async () => (await import('../cnictl/cli.js')).cnictlMain,
  // Not linked: the harness's traffic endpoint, run as `tether probe ...` inside test namespaces.
  probe: async () => (await import('../conformance/probe.js')).probeMain,
};

/** The names dist/bin gets as links to the binary. */
export const LINKS = ['cnictl'];
