#!/usr/bin/env bash
# Installs the Debian packages virtplane needs when they are missing: nats-server for the embedded
# default and the tests, qemu and a small kernel for real guests, the host-network tools, and virsh
# for the reference benchmark against libvirt's own test driver.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have nats-server || need+=(nats-server)
have qemu-system-x86_64 || need+=(qemu-system-x86)
have qemu-img || need+=(qemu-utils)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx acpid || need+=(busybox-static)
have cpio || need+=(cpio)
compgen -G '/boot/vmlinuz-*' >/dev/null || need+=(linux-image-cloud-amd64)
have ip || need+=(iproute2)
have nft || need+=(nftables)
have dnsmasq || need+=(dnsmasq-base)
have virsh || need+=(libvirt-clients)

if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
