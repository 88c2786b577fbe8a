import { parseCIDR, parseIP, formatIP, ipEqual, isLinkLocal, type Family } from '../../lib/ip/addr.js';
import type { Result } from '../../lib/cni/types.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { Link } from '../../lib/netlink/link.js';
import type { Container, Lab } from '../lab.js';
import { diffSnapshots, snapshot } from '../kernel.js';
import { runIn, selfCommand, startIn, stop, waitForLine } from '../spawn.js';
import { eventually, expect, Skip, type Case, type CaseContext } from './types.js';

const PORT = 7777;

/** The container's address of a family, as a plain IP string. */
function addressOf(r: Result, family: Family): string | undefined {
  for (const ip of r.ips ?? []) {
    const c = parseCIDR(ip.address);
    if (c?.ip.family === family) return formatIP(c.ip);
  }
  return undefined;
}

function gatewayOf(r: Result, family: Family): string | undefined {
  return r.ips?.find((i) => parseCIDR(i.address)?.ip.family === family && i.gateway)?.gateway;
}

const families = (r: Result) => ([4, 6] as Family[]).filter((f) => addressOf(r, f));

export async function ping(netns: string, ip: string, extra: string[] = []): Promise<string | null> {
  const out = await runIn(netns, 'ping', ['-n', '-c', '2', '-i', '0.2', '-W', '2', ...extra, ip], 10_000);
  return out.status === 0 ? null : `ping ${extra.join(' ')} ${ip} failed: ${(out.stdout + out.stderr).trim().split('\n').slice(-2).join(' | ')}`;
}

/** A probe server in serverNs on ip; runs fn, then stops it. */
export async function withServer<T>(serverNs: string, ip: string, args: string[], fn: () => Promise<T>, port = PORT): Promise<T> {
  const [file, prefix] = selfCommand();
  const server = startIn(serverNs, file, [...prefix, 'probe', 'serve', '--ip', ip, '--port', String(port), '--seconds', '20', ...args]);
  try {
    await waitForLine(server, 'ready');
    return await fn();
  } finally { stop(server); }
}

export async function connect(clientNs: string, proto: 'tcp' | 'udp', ip: string, extra: string[] = [], port = PORT) {
  const [file, prefix] = selfCommand();
  return runIn(clientNs, file, [...prefix, 'probe', 'connect', '--proto', proto, '--ip', ip, '--port', String(port), '--timeout-ms', '3000', ...extra], 10_000);
}

/** TCP and UDP echo from clientNs to a server in serverNs. */
export async function echo(serverNs: string, clientNs: string, ip: string): Promise<string[]> {
  return withServer(serverNs, ip, [], async () => {
    const problems: string[] = [];
    for (const proto of ['tcp', 'udp'] as const) {
      const out = await connect(clientNs, proto, ip);
      if (out.status !== 0) problems.push(out.stdout.trim() || out.stderr.trim() || `${proto} probe exited ${out.status}`);
    }
    return problems;
  });
}

/** Whether the node (the lab's host namespace) holds ip as a routable address on one of its links. */
function nodeHolds(lab: Lab, ip: string): boolean {
  const want = parseIP(ip)!;
  if (isLinkLocal(want)) return false;
  return Netlink.within(lab.host, (nl) => nl.addrs({ family: want.family }).some((a) => ipEqual(a.cidr.ip, want)));
}

/** A routable address of the node: its side of the link to the outside namespace. */
function nodeAddress(lab: Lab, f: Family): string {
  const out = lab.newOutside();
  return f === 4 ? out.hostIP : out.hostIP6;
}

/** The host end of the container's veth, found from the kernel (the container end's IFLA_LINK). */
function hostPeer(lab: Lab, c: Container, ifname = 'eth0'): Link | null {
  return Netlink.within(c.path, (ctr) => Netlink.within(lab.host, (host) => {
    const link = ctr.linkByName(ifname);
    return link?.parent !== undefined ? host.linkByIndex(link.parent) : null;
  }));
}

export const dataplaneCases: Case[] = [
  {
    id: 'reach-gateway', title: 'a container reaches its gateway, every address family (ICMP, TCP, UDP); on a routed link, the node through it', kind: 'dataplane',
    async run(ctx: CaseContext) {
      const c = ctx.lab.newContainer();
      const r = await ctx.lab.attach(c);
      try {
        const fams = families(r).filter((f) => gatewayOf(r, f));
        if (!fams.length) throw new Skip('the result names no gateway');
        const problems: string[] = [];
        for (const f of fams) {
          const gw = gatewayOf(r, f)!;
          // A gateway the node holds as a routable address (a bridge's) is reached itself. One it does not
          // (169.254.1.1, the host end's link-local: a routed link's next hop only) is proven by reaching
          // the node's own address through it.
          const target = nodeHolds(ctx.lab, gw) ? gw : nodeAddress(ctx.lab, f);
          if (target !== gw) ctx.log(`reach-gateway: IPv${f} gateway ${gw} is a next hop only; reaching the node's address ${target} through it`);
          problems.push(...[await ping(c.path, target), ...(await echo(ctx.lab.host, c.path, target))].filter((p): p is string => !!p).map((p) => `IPv${f} (${target}): ${p}`));
        }
        expect(!problems.length, problems.join('; '));
      } finally { await ctx.lab.detach(c); }
    },
  },
  {
    id: 'pod-to-pod', title: 'two containers on the network reach each other, every address family (ICMP, TCP, UDP)', kind: 'dataplane',
    async run(ctx: CaseContext) {
      const a = ctx.lab.newContainer();
      const b = ctx.lab.newContainer();
      const ra = await ctx.lab.attach(a);
      try {
        const rb = await ctx.lab.attach(b);
        try {
          const fams = families(ra).filter((f) => addressOf(rb, f));
          expect(fams.length, 'the results share no address family');
          const problems: string[] = [];
          for (const f of fams) {
            const ipA = addressOf(ra, f)!;
            const ipB = addressOf(rb, f)!;
            problems.push(...[
              await ping(a.path, ipB), await ping(b.path, ipA),
              ...(await echo(b.path, a.path, ipB)), ...(await echo(a.path, b.path, ipA)),
            ].filter((p): p is string => !!p).map((p) => `IPv${f}: ${p}`));
          }
          expect(!problems.length, problems.join('; '));
        } finally { await ctx.lab.detach(b); }
      } finally { await ctx.lab.detach(a); }
    },
  },
  {
    id: 'ipmasq', title: 'with ipMasq, a container reaches a host outside the node and is seen with the node\'s address', kind: 'dataplane',
    async run(ctx: CaseContext) {
      if (ctx.plugin.ipMasq !== true) throw new Skip('the network does not set ipMasq');
      const out = ctx.lab.newOutside();
      const c = ctx.lab.newContainer();
      const r = await ctx.lab.attach(c);
      try {
        expect(addressOf(r, 4), 'the container has no IPv4 address');
        await withServer(out.path, out.outsideIP, ['--reply', 'peer'], async () => {
          for (const proto of ['tcp', 'udp'] as const) {
            const res = await connect(c.path, proto, out.outsideIP, ['--print']);
            expect(res.status === 0, `${proto} to ${out.outsideIP} (outside the node) failed: ${res.stdout.trim() || res.stderr.trim()}`);
            const seen = res.stdout.trim().replace(/^got peer /, '').replace(/^::ffff:/, '');
            expect(seen === out.hostIP, `${proto}: the outside host saw ${seen}, not the node's address ${out.hostIP}`);
          }
        });
      } finally { await ctx.lab.detach(c); }
    },
  },
  {
    id: 'mtu', title: 'the configured MTU is on both veth ends and holds on the wire (DF)', kind: 'dataplane',
    async run(ctx: CaseContext) {
      const mtu = ctx.plugin.mtu;
      if (typeof mtu !== 'number') throw new Skip('the network sets no mtu');
      const a = ctx.lab.newContainer();
      const b = ctx.lab.newContainer();
      await ctx.lab.attach(a);
      try {
        const rb = await ctx.lab.attach(b);
        try {
          Netlink.within(a.path, (ctr) => { expect(ctr.linkByName('eth0')?.mtu === mtu, `container eth0 MTU is ${ctr.linkByName('eth0')?.mtu}, configured ${mtu}`); });
          const peer = hostPeer(ctx.lab, a);
          expect(peer?.mtu === mtu, `host end MTU is ${peer?.mtu}, configured ${mtu}`);
          const ipB = addressOf(rb, 4)!;
          const fits = await ping(a.path, ipB, ['-M', 'do', '-s', String(mtu - 28)]);
          expect(!fits, `a ${mtu}-byte packet with DF set did not pass: ${fits}`);
          const tooBig = await runIn(a.path, 'ping', ['-n', '-c', '1', '-W', '1', '-M', 'do', '-s', String(mtu - 27), ipB], 10_000);
          expect(tooBig.status !== 0 && /message too long|mtu/i.test(tooBig.stdout + tooBig.stderr), `a ${mtu + 1}-byte packet with DF set was not refused: ${tooBig.stdout}${tooBig.stderr}`);
        } finally { await ctx.lab.detach(b); }
      } finally { await ctx.lab.detach(a); }
    },
  },
  {
    id: 'hairpin', title: 'with hairpinMode, the container\'s bridge port reflects frames (hairpin on in the kernel)', kind: 'dataplane',
    async run(ctx: CaseContext) {
      if (ctx.plugin.hairpinMode !== true) throw new Skip('the network does not set hairpinMode');
      const c = ctx.lab.newContainer();
      await ctx.lab.attach(c);
      try {
        const peer = hostPeer(ctx.lab, c);
        expect(peer, 'no host end found for the container interface');
        expect(peer!.master !== undefined, `${peer!.name} is not on a bridge`);
        expect(peer!.bridgePort?.hairpin === true, `${peer!.name} has hairpin ${String(peer!.bridgePort?.hairpin)}`);
      } finally { await ctx.lab.detach(c); }
    },
  },
  {
    id: 'exhausted-range', title: 'an exhausted range gives a clear error naming it, and DEL after the failed ADD leaves nothing', kind: 'dataplane',
    async run(ctx: CaseContext) {
      const ipam = ctx.plugin.ipam as Record<string, unknown> | undefined;
      const ranges = ipam?.ranges as { subnet: string }[][] | undefined;
      if (!ipam || !['host-local', 'tether-ipam'].includes(ipam.type as string) || !ranges?.[0]?.[0]) throw new Skip('needs host-local or tether-ipam with "ranges"');
      const subnet = parseCIDR(ranges[0][0].subnet)!;
      const only = formatIP({ family: subnet.ip.family, bytes: subnet.ip.bytes.map((x, i, a) => (i === a.length - 1 ? x | 9 : x)) });
      const list = ctx.lab.variant('tiny', (p) => ({ ...p, ipam: { ...(p.ipam as object), ranges: [[{ subnet: ranges[0][0].subnet, rangeStart: only, rangeEnd: only }]] } }));
      const first = ctx.lab.newContainer();
      await ctx.lab.attach(first, list);
      try {
        const before = snapshot(ctx.lab.host);
        const held = await ctx.lab.reservations(list.name);
        const second = ctx.lab.newContainer();
        let error: Error | undefined;
        try { await ctx.lab.attach(second, list); } catch (e) { error = e as Error; }
        expect(error, 'ADD succeeded although the range has one address and it is taken');
        expect(error!.message.includes(only), `the error does not name the range (${only}): ${error!.message}`);
        const halfMade = diffSnapshots(before, snapshot(ctx.lab.host));
        await ctx.lab.detach(second, list); // the runtime's duty after a failed ADD (SPEC "Lifecycle")
        const left = await eventually(() => diffSnapshots(before, snapshot(ctx.lab.host)));
        expect(!left.length, `after DEL of the failed ADD: ${left.join('; ')}`);
        const after = await ctx.lab.reservations(list.name);
        if (held && after) expect(after.join() === held.join(), `reservations changed: ${held.join(',')} -> ${after.join(',')}`);
        expect(!halfMade.length, `the failed ADD itself left ${halfMade.join('; ')} until DEL`);
      } finally { await ctx.lab.detach(first, list); }
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
        Netlink.within(c.path, (nl) => {
          expect(!nl.linkByName('eth0'), 'eth0 is still in the container');
        });
        const after = await ctx.lab.reservations();
        if (held && after) expect(after.join() === held.join(), `IPAM reservations differ: before ${held.join(',')}; after ${after.join(',')}`);
      } finally { await ctx.lab.detach(keeper); }
    },
  },
];
