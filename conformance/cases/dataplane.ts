import { parseCIDR, formatIP } from '../../lib/ip/addr.js';
import type { Result } from '../../lib/cni/types.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { diffSnapshots, snapshot } from '../kernel.js';
import { runIn, selfCommand, startIn, stop, waitForLine } from '../spawn.js';
import { eventually, expect, Skip, type Case, type CaseContext } from './types.js';

const PORT = 7777;

/** The first address of the container's interface, as a plain IP string, by family. */
function addressOf(r: Result, family: 4 | 6 = 4): string | undefined {
  for (const ip of r.ips ?? []) {
    const c = parseCIDR(ip.address);
    if (c?.ip.family === family) return formatIP(c.ip);
  }
  return undefined;
}

async function ping(netns: string, ip: string): Promise<string | null> {
  const out = await runIn(netns, 'ping', ['-n', '-c', '2', '-i', '0.2', '-W', '2', ip], 10_000);
  return out.status === 0 ? null : `ping ${ip} failed: ${(out.stdout + out.stderr).trim().split('\n').slice(-2).join(' | ')}`;
}

/** TCP and UDP echo through a probe server started in `serverNs` on `ip`. */
async function echo(serverNs: string, clientNs: string, ip: string): Promise<string[]> {
  const [file, prefix] = selfCommand();
  const server = startIn(serverNs, file, [...prefix, 'probe', 'serve', '--ip', ip, '--port', String(PORT), '--seconds', '20']);
  const problems: string[] = [];
  try {
    await waitForLine(server, 'ready');
    for (const proto of ['tcp', 'udp']) {
      const out = await runIn(clientNs, file, [...prefix, 'probe', 'connect', '--proto', proto, '--ip', ip, '--port', String(PORT), '--timeout-ms', '3000'], 10_000);
      if (out.status !== 0) problems.push(out.stdout.trim() || out.stderr.trim() || `${proto} probe exited ${out.status}`);
    }
  } finally { stop(server); }
  return problems;
}

export const dataplaneCases: Case[] = [
  {
    id: 'reach-gateway', title: 'a container reaches its gateway (ICMP, TCP, UDP)', kind: 'dataplane',
    async run(ctx: CaseContext) {
      const c = ctx.lab.newContainer();
      const r = await ctx.lab.attach(c);
      try {
        const gw = r.ips?.find((i) => i.gateway && !i.address.includes(':'))?.gateway;
        if (!gw) throw new Skip('the result names no IPv4 gateway');
        const problems = [await ping(c.path, gw), ...(await echo(ctx.lab.host, c.path, gw))].filter((p): p is string => !!p);
        expect(!problems.length, problems.join('; '));
      } finally { await ctx.lab.detach(c); }
    },
  },
  {
    id: 'pod-to-pod', title: 'two containers on the network reach each other (ICMP, TCP, UDP)', kind: 'dataplane',
    async run(ctx: CaseContext) {
      const a = ctx.lab.newContainer();
      const b = ctx.lab.newContainer();
      const ra = await ctx.lab.attach(a);
      try {
        const rb = await ctx.lab.attach(b);
        try {
          const ipA = addressOf(ra);
          const ipB = addressOf(rb);
          expect(ipA && ipB, 'a result lacks an IPv4 address');
          const problems = [
            await ping(a.path, ipB!), await ping(b.path, ipA!),
            ...(await echo(b.path, a.path, ipB!)), ...(await echo(a.path, b.path, ipA!)),
          ].filter((p): p is string => !!p);
          expect(!problems.length, problems.join('; '));
        } finally { await ctx.lab.detach(b); }
      } finally { await ctx.lab.detach(a); }
    },
  },
  {
    id: 'del-leaves-nothing', title: 'after DEL nothing of the container remains (links, addresses, routes, IPAM)', kind: 'dataplane',
    async run(ctx: CaseContext) {
      // A first container stays attached so shared objects (the bridge, its address) exist on both sides of the comparison.
      const keeper = ctx.lab.newContainer();
      await ctx.lab.attach(keeper);
      try {
        const before = snapshot(ctx.lab.host);
        const held = await ctx.lab.reservations();
        const c = ctx.lab.newContainer();
        await ctx.lab.attach(c);
        expect(diffSnapshots(before, snapshot(ctx.lab.host)).some((d) => d.startsWith('links')), 'ADD created nothing on the host; cannot tell whether DEL cleans up');
        await ctx.lab.detach(c);
        const left = await eventually(() => diffSnapshots(before, snapshot(ctx.lab.host)));
        expect(!left.length, `on the host: ${left.join('; ')}`);
        const nl = Netlink.at(c.path);
        try {
          expect(!nl.linkByName('eth0'), 'eth0 is still in the container');
        } finally { nl.close(); }
        const after = await ctx.lab.reservations();
        if (held && after) expect(after.join() === held.join(), `IPAM reservations differ: before ${held.join(',')}; after ${after.join(',')}`);
      } finally { await ctx.lab.detach(keeper); }
    },
  },
];
