#!/usr/bin/env bash
# Install the system packages swapio's tests and benchmarks talk to (Debian 12):
# the NFS server and its portmapper, libnfs's command-line client, mtd-utils and mdadm.
set -euo pipefail
packages=(nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils mtd-utils mdadm util-linux e2fsprogs redis-server redis-tools)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-system: all system packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup-system: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
