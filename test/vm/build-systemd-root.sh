#!/usr/bin/env bash
# Builds the root disk of the systemd test guest: Debian 12 from Debian's packages
# (mmdebstrap), with systemd as init, the tools the agent runs, and the units in
# systemd/ (the guest's network, the harness's command runner, and a stand-in
# containerd.service that records where its state directory is when it starts). Output:
# $1/root.img (ext4, labelled sysroot), rebuilt only when missing. The kernel and its
# modules are the busybox guest's: its initramfs loads them, mounts this disk and hands
# over to systemd (init.sh).
set -euo pipefail

out=${1:?usage: build-systemd-root.sh OUTDIR}
[[ -s $out/root.img ]] && exit 0
command -v mmdebstrap >/dev/null || { echo "build-systemd-root: missing mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "build-systemd-root: run as root (mmdebstrap's root mode)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
root=$work/root

echo "build-systemd-root: installing Debian 12 with systemd (mmdebstrap)" >&2
mmdebstrap --quiet --variant=minbase \
	--include=systemd-sysv,udev,cryptsetup-bin,mdadm,e2fsprogs,xfsprogs,kmod,iproute2 \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	bookworm "$root"

echo storecrypt-guest >"$root/etc/hostname"
# The journal persists, so a test reads the boot before a reboot (journalctl -b -1).
mkdir -p "$root/var/log/journal"
units=$(dirname "$0")/systemd
cp "$units"/*.service "$root/etc/systemd/system/"
chroot "$root" systemctl enable --quiet guest-net.service vmexec.service
# What the test guest does not need at boot: timers that start package jobs, mdadm's
# monitor, a login prompt on the console the harness reads.
chroot "$root" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
	e2scrub_reap.service mdmonitor.service mdcheck_start.timer mdcheck_continue.timer \
	mdmonitor-oneshot.timer serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service 2>/dev/null || true
mkdir -p "$root/var/lib/containerd"
echo "content the image carried" >"$root/var/lib/containerd/from-the-image"

truncate -s 1536M "$work/root.img"
mkfs.ext4 -q -L sysroot -d "$root" "$work/root.img"
mv "$work/root.img" "$out/root.img"
echo "build-systemd-root: $(du -h "$out/root.img" | cut -f1) in $out/root.img" >&2
