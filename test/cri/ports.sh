#!/usr/bin/env bash
# containerd's CRI (the rig in shared/reference/cri) runs a pod with hostPort and bandwidth annotations on
# a conflist of tether plugins only; the hostPort answers from another namespace. Prints "ok <step>" /
# "fail <step>: why" lines for test/netns/cri-ports.test.ts, which starts this and reads them.
#   ports.sh ASSETS_DIR DIST_DIR
assets=${1:?assets dir} dist=${2:?dist dir}
source "$assets/cri_rig.sh" || exit 2
work=$(mktemp -d /tmp/tcri-ports-XXXXXX)
out="tcp$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-out"
cleanup() { cri_rig_stop; ip netns del "$out" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
ok() { echo "ok $*"; }
fail() { echo "fail $*"; exit 1; }

mkdir -p "$work/conf" "$work/ipam"
third=$((100 + RANDOM % 100))
cat > "$work/conf/10-tether.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "tcriports",
  "plugins": [{ "type": "tether-bridge", "bridge": "tcriports", "isDefaultGateway": true, "ipMasq": true,
                "capabilities": { "portMappings": true, "bandwidth": true },
                "ipam": { "type": "tether-ipam", "dataDir": "$work/ipam", "ranges": [[{ "subnet": "10.$third.9.0/24" }]] } }] }
JSON
cri_rig_start "$dist" "$work/conf" > "$work/start.log" 2>&1 || fail "rig start: $(tail -5 "$work/start.log" | tr '\n' ' ')"
ok "containerd started (netns $CRI_NS)"

# Another host: a namespace on a veth to the rig's netns (the node), 198.18.x.0/30.
x=$((RANDOM % 250 + 1))
ip netns add "$out" || fail "outside netns"
ip link add tcpo$x netns "$CRI_NS" type veth peer name eth0 netns "$out" || fail "veth"
cri_rig_nsexec ip addr add 198.18.$x.1/30 dev tcpo$x && cri_rig_nsexec ip link set tcpo$x up || fail "node side of the veth"
ip -n "$out" addr add 198.18.$x.2/30 dev eth0 && ip -n "$out" link set eth0 up && ip -n "$out" link set lo up || fail "outside side of the veth"

pod=$(CRI_RIG_POD_ANNOTATIONS='"kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "20M"' \
  cri_rig_runp web default '"port_mappings": [{"protocol": "TCP", "container_port": 80, "host_port": 8080}]' 2> "$work/runp.err") \
  || fail "runp with hostPort: $(tr '\n' ' ' < "$work/runp.err")"
ok "pod $pod with hostPort 8080 and bandwidth annotations"
ctr=$(cri_rig_run_container "$pod" httpd httpd -f -p 80 -h /etc 2> "$work/ctr.err") || fail "container: $(tr '\n' ' ' < "$work/ctr.err")"
ok "httpd container $ctr"

# The server needs a moment after start: bounded polling, then the assertion.
got=
for _ in $(seq 1 100); do
  got=$(ip netns exec "$out" curl -s -m 3 "http://198.18.$x.1:8080/hostname") && [[ -n "$got" ]] && break
  sleep 0.3
done
[[ "$got" == web* ]] || fail "hostPort from another namespace: got '${got}'"
ok "hostPort 8080 answers from another namespace: $got"

qdiscs=$(cri_rig_nsexec tc qdisc show)
grep -q "tbf .* rate 10Mbit" <<< "$qdiscs" || fail "no 10Mbit tbf (ingress): $(tr '\n' ' ' <<< "$qdiscs")"
grep -q "tbf .* rate 20Mbit" <<< "$qdiscs" || fail "no 20Mbit tbf (egress): $(tr '\n' ' ' <<< "$qdiscs")"
ok "bandwidth: tbf 10Mbit (ingress) and 20Mbit (egress) in place"

cri_rig_cri stopp "$pod" > /dev/null || fail "stopp"
cri_rig_cri rmp "$pod" > /dev/null || fail "rmp"
left=$(cri_rig_nsexec nft list map inet tether_ports wild4)
grep -q 8080 <<< "$left" && fail "hostPort still published after rmp: $left"
ok "stopp + rmp removed the mapping"
echo "done"
