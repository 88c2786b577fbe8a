#!/usr/bin/env python3
"""Recreate the rtnetlink byte vectors in this directory from a live kernel.

Run as root via ./capture.sh (needs iproute2, bridge(8) and strace).

Every command runs inside network namespaces created here (tvcap-a, tvcap-b)
which are deleted by exact name at the end.  Nothing touches the root netns.

For each iproute2 command we run it under
    strace -e trace=sendmsg,recvmsg,sendto,recvfrom -e write=all -e read=all
and take the full hex dumps strace prints for every netlink buffer sent or
received.  Preliminary traffic that does not carry the operation (the
`ip link` RTM_NEWLINK feature probe with seq 0, and the RTM_GETLINK by-name
lookups iproute2 uses to resolve a device name to an ifindex) is filtered out
unless a step asks to keep it.  Replies are matched to requests by
(socket fd, nlmsg_seq).
"""
import errno
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
NS_A = "tvcap-a"
NS_B = "tvcap-b"
OUR_NETNS = (NS_A, NS_B)

# ---------------------------------------------------------------- constants
NLMSG_NAMES = {1: "NLMSG_NOOP", 2: "NLMSG_ERROR", 3: "NLMSG_DONE", 4: "NLMSG_OVERRUN",
               16: "RTM_NEWLINK", 17: "RTM_DELLINK", 18: "RTM_GETLINK", 19: "RTM_SETLINK",
               20: "RTM_NEWADDR", 21: "RTM_DELADDR", 22: "RTM_GETADDR",
               24: "RTM_NEWROUTE", 25: "RTM_DELROUTE", 26: "RTM_GETROUTE",
               28: "RTM_NEWNEIGH", 29: "RTM_DELNEIGH", 30: "RTM_GETNEIGH",
               88: "RTM_NEWNSID", 89: "RTM_DELNSID", 90: "RTM_GETNSID"}
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 0x8
NLMSGERR_ATTRS = {1: "MSG", 2: "OFFS", 3: "COOKIE", 4: "POLICY", 5: "MISS_TYPE", 6: "MISS_NEST"}

# ---------------------------------------------------------------- helpers


def run(argv, check=True, capture=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(argv)}\n{r.stderr}")
    return r


def nsx(ns, cmd):
    """Uncaptured setup command inside a netns (cmd is a list)."""
    return run(["ip", "netns", "exec", ns] + cmd)


def ip_json(ns, cmd):
    r = nsx(ns, cmd)
    out = r.stdout.strip()
    return json.loads(out) if out else None


def split_nlmsgs(buf):
    """Return (list of (offset, len, type, flags, seq, pid)), trailing_bytes)."""
    msgs, off = [], 0
    while off + 16 <= len(buf):
        ln, typ, flags, seq, pid = struct.unpack_from("<IHHII", buf, off)
        if ln < 16 or off + ln > len(buf):
            break
        msgs.append((off, ln, typ, flags, seq, pid))
        off += (ln + 3) & ~3
    return msgs, len(buf) - min(off, len(buf))


def attrs(buf, start, end):
    out, off = [], start
    while off + 4 <= end:
        ln, typ = struct.unpack_from("<HH", buf, off)
        if ln < 4 or off + ln > end:
            break
        out.append((typ & 0x3FFF, typ, buf[off + 4:off + ln]))
        off += (ln + 3) & ~3
    return out


def describe(buf):
    msgs, trailing = split_nlmsgs(buf)
    lines = []
    for off, ln, typ, flags, seq, pid in msgs:
        s = f"{NLMSG_NAMES.get(typ, str(typ))} len={ln} flags=0x{flags:x} seq={seq} pid={pid}"
        if typ == NLMSG_ERROR:
            err = struct.unpack_from("<i", buf, off + 16)[0]
            name = errno.errorcode.get(-err, "") if err else "ACK"
            s += f" error={err} ({name})"
            if flags & 0x200:  # NLM_F_ACK_TLVS
                inner_len = struct.unpack_from("<I", buf, off + 20)[0]
                tlv_start = off + 20 + (16 if flags & 0x100 else inner_len)
                for t, _raw, val in attrs(buf, tlv_start, off + ln):
                    nm = NLMSGERR_ATTRS.get(t, str(t))
                    if t == 1:
                        s += f" extack.{nm}={val.rstrip(bytes(1)).decode()!r}"
                    elif len(val) == 4:
                        s += f" extack.{nm}={struct.unpack('<I', val)[0]}"
                    else:
                        s += f" extack.{nm}=<{len(val)} bytes>"
        elif typ == NLMSG_DONE and ln >= 20:
            s += f" status={struct.unpack_from('<i', buf, off + 16)[0]}"
        lines.append(s)
    if trailing:
        lines.append(f"(+{trailing} trailing bytes after the last nlmsghdr: iproute2 sent its whole request struct)")
    return lines


# ---------------------------------------------------------------- strace parsing
SYSCALL_RE = re.compile(r"^(sendmsg|recvmsg|sendto|recvfrom)\((\d+),.*\)\s+=\s+(-?\d+)")
DUMP_RE = re.compile(r"^ \| ([0-9a-f]+)  ")


def parse_strace(path):
    events, cur = [], None
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.rstrip("\n")
            m = SYSCALL_RE.match(line)
            if m:
                cur = {"syscall": m.group(1), "fd": int(m.group(2)), "ret": int(m.group(3)),
                       "dir": "request" if m.group(1).startswith("send") else "reply",
                       "data": bytearray()}
                events.append(cur)
                continue
            d = DUMP_RE.match(line)
            if d and cur is not None:
                start = d.end()
                hexpart = line[start:start + 49]
                cur["data"] += bytes.fromhex(hexpart.replace(" ", ""))
                continue
            if line.startswith(" * ") or line.startswith("+++") or line.startswith("---"):
                continue
            if line.strip():
                cur = None  # some other line (e.g. a failing syscall)
    for e in events:
        e["data"] = bytes(e["data"])
        if e["ret"] >= 0 and len(e["data"]) not in (0, e["ret"]):
            raise SystemExit(f"hexdump length mismatch in {path}: {e['syscall']} ret={e['ret']} got {len(e['data'])}")
    return [e for e in events if e["data"]]  # drops the MSG_PEEK|MSG_TRUNC size probes


def is_probe(data):
    """`ip link ...` first sends an empty RTM_NEWLINK (seq 0) to probe for RTM_NEWLINK support."""
    msgs, _ = split_nlmsgs(data)
    return bool(msgs) and msgs[0][2] == RTM_NEWLINK and msgs[0][4] == 0 and msgs[0][1] == 32


def is_lookup(data):
    """ll_name_to_index()/ll_index_to_name(): non-dump RTM_GETLINK, AF_UNSPEC,
    IFLA_EXT_MASK including RTEXT_FILTER_SKIP_STATS, sent on iproute2's second socket."""
    msgs, _ = split_nlmsgs(data)
    if not msgs:
        return False
    off, ln, typ, flags, seq, pid = msgs[0]
    if typ == RTM_GETLINK and not (flags & NLM_F_DUMP) and ln > 32 and data[off + 16] == 0:
        a = {t: v for t, _r, v in attrs(data, off + 32, off + ln)}
        if len(a.get(IFLA_EXT_MASK, b"")) == 4 and \
                struct.unpack("<I", a[IFLA_EXT_MASK])[0] & RTEXT_FILTER_SKIP_STATS:
            return True
    return False


def is_preliminary(data):
    """Default filter: the probe, and every RTM_GETLINK (name/index lookups, and the full link
    dump that `bridge` and `ip neigh` do to fill their ifindex cache)."""
    return is_probe(data) or first_type(data) == RTM_GETLINK


def traced(ns, argv, keep=None, expect_rc=0):
    """Run argv in ns under strace; return (messages, stdout, stderr, rc)."""
    with tempfile.NamedTemporaryFile(prefix="tvcap-strace-", delete=False) as tf:
        out = tf.name
    try:
        r = run(["ip", "netns", "exec", ns, "strace", "-o", out, "-e",
                 "trace=sendmsg,recvmsg,sendto,recvfrom", "-e", "write=all", "-e", "read=all"] + argv,
                check=False)
        if expect_rc is not None and (r.returncode == 0) != (expect_rc == 0):
            raise SystemExit(f"unexpected rc {r.returncode} for {argv}: {r.stderr}")
        events = parse_strace(out)
    finally:
        os.unlink(out)
    kept_keys, msgs = set(), []
    for e in events:
        nl, _ = split_nlmsgs(e["data"])
        seq = nl[0][4] if nl else None
        if e["dir"] == "request":
            ok = keep(e["data"]) if keep else not is_preliminary(e["data"])
            if ok:
                kept_keys.add((e["fd"], seq))
            else:
                continue
        elif (e["fd"], seq) not in kept_keys:
            continue
        msgs.append({"dir": e["dir"], "command": " ".join(argv), "hex": e["data"].hex(),
                     "summary": describe(e["data"])})
    return msgs, r.stdout, r.stderr, r.returncode


# ---------------------------------------------------------------- raw netlink (for ENODEV on RTM_DELLINK)

def raw_request(hexreq, cap_ack):
    """Send one rtnetlink request (EXT_ACK + STRICT_CHK like iproute2, CAP_ACK optional);
    print request/reply JSON."""
    SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 270, 10, 11, 12
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    if cap_ack:
        s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    s.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    s.bind((0, 0))
    req = bytes.fromhex(hexreq)
    s.send(req)
    rep = s.recv(65536)
    print(json.dumps([{"dir": "request", "hex": req.hex()}, {"dir": "reply", "hex": rep.hex()}]))


def nlmsg(typ, flags, seq, body):
    return struct.pack("<IHHII", 16 + len(body), typ, flags, seq, 0) + body


def nla(typ, payload):
    ln = 4 + len(payload)
    return struct.pack("<HH", ln, typ) + payload + bytes((4 - ln % 4) % 4)


def raw_traced(ns, description, req, cap_ack=False):
    r = nsx(ns, ["python3", os.path.abspath(__file__), "raw", req.hex()] + (["cap_ack"] if cap_ack else []))
    msgs = json.loads(r.stdout)
    for m in msgs:
        m["command"] = description
        m["summary"] = describe(bytes.fromhex(m["hex"]))
    return msgs


# ---------------------------------------------------------------- scenario output
KERNEL = os.uname().release
IPROUTE2 = run(["ip", "-V"]).stdout.strip()


def write_vector(name, description, steps, ip_json_cmd=None, ip_json_val=None, ns=NS_A, extra=None):
    msgs = [m for step in steps for m in step]
    commands = []
    for m in msgs:
        if m["command"] not in commands:
            commands.append(m["command"])
    doc = {"description": description, "command": " && ".join(commands), "kernel": KERNEL,
           "iproute2": IPROUTE2, "netns": ns, "messages": msgs}
    if ip_json_cmd is not None:
        doc["ipJsonCommand"] = ip_json_cmd
        doc["ipJson"] = ip_json_val if ip_json_val is not None else ip_json(ns, ip_json_cmd.split())
    else:
        doc["ipJson"] = None
    if extra:
        doc["ipJsonExtra"] = extra
    for m in msgs:
        assert m["hex"], name
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"wrote {name}.json: {len(msgs)} messages")
    for m in msgs:
        for s in m["summary"]:
            print(f"   {m['dir']:7s} {s}")


def T(argv, ns=NS_A, keep=None, expect_rc=0):
    msgs, _out, err, rc = traced(ns, argv.split() if isinstance(argv, str) else argv, keep, expect_rc)
    if not msgs:
        raise SystemExit(f"no netlink messages kept for {argv} (rc={rc} {err})")
    return msgs


def first_type(data):
    nl, _ = split_nlmsgs(data)
    return nl[0][2] if nl else None


def only_types(*types):
    return lambda d: first_type(d) in types and not is_probe(d) and not is_lookup(d)


# ---------------------------------------------------------------- namespaces

def cleanup():
    existing = run(["ip", "netns", "list"]).stdout.split("\n")
    names = {line.split()[0] for line in existing if line.strip()}
    for ns in OUR_NETNS:
        if ns in names:
            run(["ip", "netns", "del", ns])


def main():
    if os.geteuid() != 0:
        raise SystemExit("must run as root")
    cleanup()
    try:
        for ns in OUR_NETNS:
            run(["ip", "netns", "add", ns])
        scenarios()
    finally:
        cleanup()
    left = [line for line in run(["ip", "netns", "list"]).stdout.split("\n") if line.startswith("tvcap-")]
    if left:
        raise SystemExit(f"namespaces left behind: {left}")


def scenarios():
    A = NS_A
    nsx(A, ["ip", "link", "set", "lo", "up"])
    nsx(NS_B, ["ip", "link", "set", "lo", "up"])

    # 1. veth pair with the peer created directly in another netns
    s1 = T("ip link add vtest0 type veth peer name eth0 netns tvcap-b")
    write_vector("01-veth-peer-netns",
                 "RTM_NEWLINK veth with VETH_INFO_PEER (ifinfomsg + IFLA_IFNAME + IFLA_NET_NS_FD; the fd number is "
                 "process-specific); ack reply (error=0 acks always echo only the request header, NLM_F_CAPPED)",
                 [s1], "ip -j -d link show vtest0",
                 extra={"ip -j -d link show eth0 (run in tvcap-b)": ip_json(NS_B, "ip -j -d link show eth0".split())})

    # setup (not captured): an underlay veth for vxlan/onlink routes
    nsx(A, "ip link add ul0 type veth peer name ul1 netns tvcap-b".split())
    nsx(A, "ip addr add 198.18.0.1/24 dev ul0".split())
    nsx(A, "ip link set ul0 up".split())
    nsx(NS_B, "ip addr add 198.18.0.2/24 dev ul1".split())
    nsx(NS_B, "ip link set ul1 up".split())

    # 2. bridge
    s2a = T("ip link add br-t0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0")
    s2b = T("ip link set br-t0 mtu 1400 up")
    write_vector("02-bridge-create",
                 "RTM_NEWLINK bridge with IFLA_INFO_DATA {IFLA_BR_FORWARD_DELAY, IFLA_BR_STP_STATE, "
                 "IFLA_BR_MCAST_SNOOPING}; then RTM_NEWLINK by ifindex with IFLA_MTU and ifi_flags/ifi_change IFF_UP",
                 [s2a, s2b], "ip -j -d link show br-t0")
    s2c = T("ip -d link show br-t0", keep=only_types(RTM_GETLINK))
    write_vector("02-bridge-show",
                 "RTM_GETLINK by ifindex (ifi_family AF_PACKET, IFLA_EXT_MASK) and the RTM_NEWLINK reply with "
                 "IFLA_LINKINFO {IFLA_INFO_KIND=bridge, IFLA_INFO_DATA bridge attrs}",
                 [s2c], "ip -j -d link show br-t0")

    # 3. vxlan
    s3a = T("ip link add vx-t0 type vxlan id 42 local 198.18.0.1 dstport 4789 nolearning dev ul0")
    write_vector("03-vxlan-create",
                 "RTM_NEWLINK vxlan: IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_PORT (be16), "
                 "IFLA_VXLAN_LEARNING=0",
                 [s3a], "ip -j -d link show vx-t0")
    s3b = T("ip -d link show vx-t0", keep=only_types(RTM_GETLINK))
    write_vector("03-vxlan-show", "RTM_GETLINK vx-t0 + RTM_NEWLINK reply with vxlan IFLA_INFO_DATA",
                 [s3b], "ip -j -d link show vx-t0")

    # 4. master + hairpin
    s4a = T("ip link set vtest0 master br-t0")
    s4b = T("bridge link set dev vtest0 hairpin on")
    write_vector("04-bridge-port-master-hairpin",
                 "RTM_NEWLINK with IFLA_MASTER; then AF_BRIDGE RTM_SETLINK with IFLA_PROTINFO|NLA_F_NESTED "
                 "{IFLA_BRPORT_MODE (hairpin)}",
                 [s4a, s4b], "ip -j -d link show vtest0")
    # setup: carrier on the bridge (port up, peer up)
    nsx(A, "ip link set vtest0 up".split())
    nsx(NS_B, "ip link set eth0 up".split())

    # 5. addresses
    s5a = T("ip addr add 10.99.0.1/24 dev br-t0")
    s5b = T("ip addr add fd99::1/64 dev br-t0 nodad")
    write_vector("05-addr-add",
                 "RTM_NEWADDR AF_INET (IFA_LOCAL, IFA_ADDRESS) and AF_INET6 (IFA_LOCAL, IFA_ADDRESS; IFA_F_NODAD "
                 "only in the ifaddrmsg ifa_flags byte, no IFA_FLAGS attribute)",
                 [s5a, s5b], "ip -j addr show dev br-t0")
    s5c, out5, _e, _rc = traced(A, "ip -j addr show dev br-t0".split(), keep=only_types(22))
    write_vector("05-addr-dump",
                 "RTM_GETADDR dump filtered by ifa_index (strict checking) and the multipart RTM_NEWADDR replies "
                 "+ NLMSG_DONE",
                 [s5c], "ip -j addr show dev br-t0", ip_json_val=json.loads(out5))

    # 6. routes
    s6 = [T("ip route add 10.98.0.0/24 via 10.99.0.254"),
          T("ip route add 10.97.0.0/24 via 198.18.0.9 dev ul0 onlink"),
          T("ip route add 10.96.0.0/24 dev br-t0 table 1000 metric 50"),
          T("ip -6 route add fd98::/64 via fd99::fe"),
          T("ip route add blackhole 10.95.0.0/26 proto 250")]
    write_vector("06-route-add",
                 "RTM_NEWROUTE: RTA_GATEWAY; RTNH_F_ONLINK in rtm_flags + RTA_OIF; table 1000 via RTA_TABLE "
                 "(rtm_table=RT_TABLE_UNSPEC, scope link) + RTA_PRIORITY + RTA_OIF; IPv6 gateway; RTN_BLACKHOLE "
                 "with rtm_protocol 250 and no RTA_OIF",
                 s6, "ip -j -d route show table all")
    s6d, out6, _e, _rc = traced(A, "ip -j route show table all".split(), keep=only_types(26))
    write_vector("06-route-dump", "RTM_GETROUTE dump (table all) and the multipart RTM_NEWROUTE replies + NLMSG_DONE",
                 [s6d], "ip -j route show table all", ip_json_val=json.loads(out6))
    s6e, out6e, _e, _rc = traced(A, "ip -j -6 route show table all".split(), keep=only_types(26))
    write_vector("06-route-dump-v6", "RTM_GETROUTE AF_INET6 dump (table all) + replies + NLMSG_DONE",
                 [s6e], "ip -j -6 route show table all", ip_json_val=json.loads(out6e))
    s6f = T("ip route del 10.98.0.0/24 via 10.99.0.254")
    write_vector("06-route-del", "RTM_DELROUTE with RTA_DST + RTA_GATEWAY (rtm_protocol 0, rtm_scope "
                 "RT_SCOPE_NOWHERE, rtm_type RTN_UNSPEC, as iproute2 sends for deletes), and the ack", [s6f],
                 "ip -j -d route show table all")

    # 7. neighbours / fdb
    s7a = T("ip neigh add 10.99.0.77 lladdr 02:00:00:00:00:77 dev br-t0 nud permanent")
    write_vector("07-neigh-add", "RTM_NEWNEIGH AF_INET NUD_PERMANENT with NDA_DST + NDA_LLADDR", [s7a],
                 "ip -j neigh show dev br-t0")
    s7b = [T("bridge fdb append 00:00:00:00:00:00 dev vx-t0 dst 198.18.0.2 self permanent"),
           T("bridge fdb add 02:00:00:00:00:88 dev vx-t0 dst 198.18.0.3 self permanent")]
    write_vector("07-fdb-add",
                 "RTM_NEWNEIGH AF_BRIDGE NTF_SELF NUD_PERMANENT with NDA_LLADDR + NDA_DST (append uses "
                 "NLM_F_APPEND, add uses NLM_F_EXCL)",
                 s7b, "bridge -j fdb show dev vx-t0")
    s7c, out7, _e, _rc = traced(A, "bridge -j fdb show dev vx-t0".split(), keep=only_types(30))
    write_vector("07-fdb-dump", "RTM_GETNEIGH AF_BRIDGE dump filtered to vx-t0 and the RTM_NEWNEIGH replies + NLMSG_DONE",
                 [s7c], "bridge -j fdb show dev vx-t0", ip_json_val=json.loads(out7))

    # 8. errors
    s8a = T("ip link add br-t0 type bridge", expect_rc=2)
    write_vector("08-error-eexist", "RTM_NEWLINK NLM_F_CREATE|NLM_F_EXCL for an existing name -> NLMSG_ERROR -EEXIST",
                 [s8a])
    s8b = T("ip link del nosuch0", keep=lambda d: first_type(d) == RTM_GETLINK, expect_rc=1)
    body = struct.pack("<BxHiII", 0, 0, 0, 0, 0) + nla(IFLA_IFNAME, b"nosuch0\0")
    s8c = raw_traced(A, "raw RTM_DELLINK ifi_index=0 IFLA_IFNAME=nosuch0 (python socket, EXT_ACK, no CAP_ACK)",
                     nlmsg(RTM_DELLINK, 0x5, 0x74760001, body))
    body = struct.pack("<BxHiII", 0, 0, 4242, 0, 0)
    s8d = raw_traced(A, "raw RTM_DELLINK ifi_index=4242 (python socket, EXT_ACK+CAP_ACK)",
                     nlmsg(RTM_DELLINK, 0x5, 0x74760002, body), cap_ack=True)
    write_vector("08-error-enodev",
                 "ENODEV: `ip link del nosuch0` never sends RTM_DELLINK because its by-name RTM_GETLINK lookup "
                 "fails first (error reply echoes the whole request: iproute2 does not set NETLINK_CAP_ACK). "
                 "So two raw RTM_DELLINK requests were sent from a python netlink socket: by IFLA_IFNAME without "
                 "CAP_ACK (full echo) and by ifi_index with CAP_ACK (NLM_F_CAPPED, header-only echo)",
                 [s8b, s8c, s8d])
    s8e = T("ip route add 10.94.0.0/24 via 10.200.0.1", expect_rc=2)
    write_vector("08-error-extack-gateway",
                 "RTM_NEWROUTE with an unreachable gateway -> NLMSG_ERROR -ENETUNREACH with NLM_F_ACK_TLVS and "
                 "NLMSGERR_ATTR_MSG (extended ack text)",
                 [s8e])
    s8f = T("ip link set br-t0 mtu 20", expect_rc=2)
    write_vector("08-error-extack-mtu", "RTM_NEWLINK IFLA_MTU below the device minimum -> -EINVAL with ext-ack text",
                 [s8f])

    body = struct.pack("<BxHiII", 0, 0, 0, 0, 0) + nla(IFLA_IFNAME, b"br-t0\0") + nla(IFLA_MTU, b"\x00\x01")
    s8g = raw_traced(A, "raw RTM_NEWLINK IFLA_IFNAME=br-t0 with a 2-byte IFLA_MTU (python socket, EXT_ACK)",
                     nlmsg(RTM_NEWLINK, 0x5, 0x74760003, body))
    write_vector("08-error-extack-policy",
                 "attribute failing netlink policy validation (IFLA_MTU with a 2-byte payload) -> -ERANGE with "
                 "the full request echoed (no CAP_ACK), NLMSGERR_ATTR_MSG, "
                 "NLMSGERR_ATTR_OFFS (byte offset of the bad attribute in the echoed request) and "
                 "NLMSGERR_ATTR_POLICY (nested policy description)",
                 [s8g])

    # IFLA_LINKINFO {IFLA_INFO_KIND "vxlan", IFLA_INFO_DATA {IFLA_VXLAN_ID 99999999}}, built like iproute2
    # (no NLA_F_NESTED); iproute2 itself refuses the id client-side, hence the raw socket.
    linkinfo = nla(1, b"vxlan") + nla(2, nla(1, struct.pack("<I", 99999999)))
    body = struct.pack("<BxHiII", 0, 0, 0, 0, 0) + nla(IFLA_IFNAME, b"vx-bad\0") + nla(18, linkinfo)
    s8h = raw_traced(A, "raw RTM_NEWLINK vx-bad type vxlan IFLA_VXLAN_ID=99999999 (python socket, EXT_ACK+CAP_ACK)",
                     nlmsg(RTM_NEWLINK, 0x605, 0x74760004, body), cap_ack=True)
    write_vector("08-error-extack-vni",
                 "vxlan VNI out of range: `ip link add x type vxlan id 99999999` is rejected by iproute2 before "
                 "sending, so the same RTM_NEWLINK was sent from a raw socket with CAP_ACK: NLM_F_CAPPED|"
                 "NLM_F_ACK_TLVS, NLMSGERR_ATTR_MSG and NLMSGERR_ATTR_OFFS pointing at the nested IFLA_VXLAN_ID",
                 [s8h])

    # 9. link dump
    s9, out9, _e, _rc = traced(A, "ip -j -d link show".split(), keep=only_types(RTM_GETLINK))
    write_vector("09-link-dump",
                 "RTM_GETLINK dump (IFLA_EXT_MASK) in a netns with lo, veths (vtest0, ul0; peers in tvcap-b), "
                 "bridge br-t0 and vxlan vx-t0: full multipart reply ending in NLMSG_DONE",
                 [s9], "ip -j -d link show", ip_json_val=json.loads(out9))


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "raw":
        raw_request(sys.argv[2], len(sys.argv) == 4 and sys.argv[3] == "cap_ack")
    else:
        main()
