// Generated into place by `cnictl install --docker` (with its --bin-dir); systemd/tetherd-docker.service is
// this text for /opt/cni/bin, and a test keeps the two equal.
export function dockerUnit(binDir: string): string {
  return `# tether as Docker's network and IPAM driver "tether" (docker network create -d tether --ipam-driver tether).
# Install: cnictl install --docker (binary, links and this unit), or by hand:
#   install -m 0644 systemd/tetherd-docker.service /etc/systemd/system/ && systemctl daemon-reload
#   systemctl enable --now tetherd-docker
# See docs/docker.md.
[Unit]
Description=tether Docker network and IPAM driver
Documentation=file:///usr/share/doc/tether/docker.md
# dockerd activates plugins on first use, but it should find the socket at once: start before it, stop after it.
Before=docker.service
ConditionFileIsExecutable=${binDir}/tetherd
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=simple
ExecStart=${binDir}/tetherd docker-plugin --socket /run/docker/plugins/tether.sock --state-dir /var/lib/tether/docker
Restart=always
# A usage (2) or configuration (3) error does not heal by itself.
RestartPreventExitStatus=2 3
RestartSec=1s
TimeoutStopSec=15s
KillMode=mixed

# /run/docker/plugins, where dockerd looks for the socket, made writable (and kept when the driver stops).
RuntimeDirectory=docker/plugins
RuntimeDirectoryPreserve=yes
StateDirectory=tether
LogsDirectory=tether

# Bridges, veths, addresses and nftables over netlink: CAP_NET_ADMIN; nft -f once per network too.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
# The driver's links must be in dockerd's (the host's) network namespace.
PrivateNetwork=no
ProtectSystem=strict
ReadWritePaths=/var/lib/tether /var/log/tether
ProtectHome=yes
PrivateTmp=yes
# Not ProtectKernelTunables: forwarding sysctls under /proc/sys/net.
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`;
}
