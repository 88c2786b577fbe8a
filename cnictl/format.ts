import type { Result } from '../lib/cni/types.js';

/** A plain text table: columns padded to the widest cell, no colours (output is often piped). */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

export function describeResult(r: Result): string {
  const lines: string[] = [];
  const ifaces = r.interfaces ?? [];
  for (const [i, iface] of ifaces.entries()) {
    const where = iface.sandbox ? `in ${iface.sandbox}` : 'on the host';
    lines.push(`  interface ${i}: ${[iface.name, iface.mac, where, iface.mtu ? `mtu ${iface.mtu}` : ''].filter(Boolean).join(' ')}`);
  }
  for (const ip of r.ips ?? []) {
    const on = ip.interface !== undefined && ifaces[ip.interface] ? ` on ${ifaces[ip.interface].name}` : '';
    lines.push(`  address ${ip.address}${ip.gateway ? ` gateway ${ip.gateway}` : ''}${on}`);
  }
  for (const rt of r.routes ?? []) lines.push(`  route ${rt.dst}${rt.gw ? ` via ${rt.gw}` : ''}`);
  if (r.dns?.nameservers?.length) lines.push(`  dns ${r.dns.nameservers.join(', ')}`);
  return lines.join('\n');
}
