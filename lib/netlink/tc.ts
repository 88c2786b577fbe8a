import { NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL } from './constants.js';
import { Attrs, MessageWriter } from './wire.js';

// Traffic control over rtnetlink: the qdiscs and the one filter that shape a container's traffic
// (tbf as a root qdisc; an ingress qdisc whose matchall filter redirects to an ifb with mirred).

export const RTM_NEWQDISC = 36;
export const RTM_DELQDISC = 37;
export const RTM_GETQDISC = 38;
export const RTM_NEWTFILTER = 44;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_TBF_PARMS = 1;
const TCA_TBF_RATE64 = 4;
const TCA_TBF_BURST = 6;
const TC_LINKLAYER_ETHERNET = 1;
const TCA_U32_SEL = 5;
const TCA_U32_ACT = 7;
const TC_U32_TERMINAL = 1;
const TCA_ACT_KIND = 1;
const TCA_ACT_OPTIONS = 2;
const TCA_MIRRED_PARMS = 2;
const TC_ACT_STOLEN = 4;
const TCA_EGRESS_REDIR = 1;
const ETH_P_ALL = 0x0003;

export const TC_H_ROOT = 0xffffffff;
export const TC_H_INGRESS = 0xfffffff1;
export const INGRESS_HANDLE = 0xffff0000;

/** A token bucket: rate in bytes per second, burst and queue limit in bytes. */
export interface Tbf { rateBytes: number; burstBytes: number; limitBytes: number }

export interface Qdisc { index: number; handle: number; parent: number; kind: string; tbf?: { rateBytes: number; burstBytes?: number; limitBytes: number } }

function tcmsg(index: number, handle: number, parent: number, info = 0): Uint8Array {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  v.setUint8(0, 0); // AF_UNSPEC
  v.setInt32(4, index, true);
  v.setUint32(8, handle >>> 0, true);
  v.setUint32(12, parent >>> 0, true);
  v.setUint32(16, info >>> 0, true);
  return b;
}

/** struct tc_tbf_qopt: rate and peakrate (struct tc_ratespec), limit, buffer (in 64 ns ticks), mtu. */
function tbfParms(t: Tbf): Uint8Array {
  const b = new Uint8Array(36);
  const v = new DataView(b.buffer);
  v.setUint8(1, TC_LINKLAYER_ETHERNET); // a known link layer: the kernel then needs no rate table
  v.setUint32(8, Math.min(t.rateBytes, 0xffffffff), true);
  v.setUint32(24, t.limitBytes, true);
  const bufferNs = (t.burstBytes / t.rateBytes) * 1e9;
  v.setUint32(28, Math.min(Math.floor(bufferNs / 64), 0xffffffff), true);
  return b;
}

/** Creates (or with replace, replaces) a tbf qdisc as the device's root. */
export function encodeTbf(index: number, t: Tbf, handle = 0x00010000): MessageWriter {
  const w = new MessageWriter(RTM_NEWQDISC, NLM_F_ACK | NLM_F_CREATE, 128);
  w.struct(tcmsg(index, handle, TC_H_ROOT));
  w.str(TCA_KIND, 'tbf');
  w.nest(TCA_OPTIONS, () => {
    w.bytes(TCA_TBF_PARMS, tbfParms(t));
    if (t.rateBytes > 0xffffffff) w.bytes(TCA_TBF_RATE64, u64(t.rateBytes));
    w.u32(TCA_TBF_BURST, t.burstBytes);
  });
  return w;
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(Math.round(n)), true);
  return b;
}

export function encodeIngressQdisc(index: number): MessageWriter {
  const w = new MessageWriter(RTM_NEWQDISC, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 64);
  w.struct(tcmsg(index, INGRESS_HANDLE, TC_H_INGRESS));
  w.str(TCA_KIND, 'ingress');
  return w;
}

export function encodeDelQdisc(index: number, parent: number, handle = 0): MessageWriter {
  const w = new MessageWriter(RTM_DELQDISC, NLM_F_ACK, 32);
  w.struct(tcmsg(index, handle, parent));
  return w;
}

/**
 * A u32 filter matching every packet ("match u32 0 0", as the reference plugin uses: matchall is not
 * in every kernel) on the ingress qdisc, redirecting it to the egress of device `to` (mirred).
 */
export function encodeRedirectFilter(index: number, to: number): MessageWriter {
  const w = new MessageWriter(RTM_NEWTFILTER, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 160);
  const proto = ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8); // network order in the low 16 bits
  w.struct(tcmsg(index, 0, INGRESS_HANDLE, (1 << 16) | proto));
  w.str(TCA_KIND, 'u32');
  w.nest(TCA_OPTIONS, () => {
    // struct tc_u32_sel (16 bytes) with one all-zero struct tc_u32_key (16 bytes): terminal, one key.
    const sel = new Uint8Array(32);
    sel[0] = TC_U32_TERMINAL;
    sel[2] = 1;
    w.bytes(TCA_U32_SEL, sel);
    w.nest(TCA_U32_ACT, () => w.nest(1, () => {
      w.str(TCA_ACT_KIND, 'mirred');
      w.nest(TCA_ACT_OPTIONS, () => {
        const p = new Uint8Array(28);
        const v = new DataView(p.buffer);
        v.setInt32(8, TC_ACT_STOLEN, true);
        v.setInt32(20, TCA_EGRESS_REDIR, true);
        v.setUint32(24, to, true);
        w.bytes(TCA_MIRRED_PARMS, p);
      });
    }));
  });
  return w;
}

export function encodeQdiscDump(): MessageWriter {
  const w = new MessageWriter(RTM_GETQDISC, NLM_F_DUMP, 32);
  w.struct(tcmsg(0, 0, 0));
  return w;
}

export function decodeQdisc(payload: Buffer): Qdisc {
  const index = payload.readInt32LE(4);
  const handle = payload.readUInt32LE(8);
  const parent = payload.readUInt32LE(12);
  const a = new Attrs(payload, 20);
  const kind = a.str(TCA_KIND) ?? '';
  const q: Qdisc = { index, handle, parent, kind };
  if (kind === 'tbf') {
    const parms = a.nested(TCA_OPTIONS)?.get(TCA_TBF_PARMS);
    const rate64 = a.nested(TCA_OPTIONS)?.get(TCA_TBF_RATE64);
    if (parms) {
      q.tbf = {
        rateBytes: rate64 ? Number(rate64.readBigUInt64LE(0)) : parms.readUInt32LE(8),
        limitBytes: parms.readUInt32LE(24),
      };
    }
  }
  return q;
}
