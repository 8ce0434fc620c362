#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a Debian or Ubuntu machine, as root:
# QEMU for the test guest and the host tools the guest's initramfs is built from, and
# Chromium, which renders the HTML report in a test, and botocore for AWS's API models. Elsewhere
# it says exactly what is missing and exits non-zero.
set -euo pipefail

# command -> Debian package
declare -A need=(
	[qemu-system-x86_64]=qemu-system-x86
	[busybox]=busybox-static
	[cpio]=cpio
	[cryptsetup]=cryptsetup-bin
	[mdadm]=mdadm
	[blkid]=util-linux
	[mkfs.ext4]=e2fsprogs
	[mkfs.xfs]=xfsprogs
	[depmod]=kmod
	[file]=file
	[fio]=fio
	# bootunit's tests have systemd's own parser check the boot unit.
	[systemd-analyze]=systemd
	# The systemd test guest's root is built from Debian's packages.
	[mmdebstrap]=mmdebstrap
	# audit's test renders the HTML report as an auditor's browser would.
	[chromium]=chromium
)

missing=()
for cmd in "${!need[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# The guest's /bin is busybox: it must be the static build.
if command -v busybox >/dev/null 2>&1 && ! file -L "$(command -v busybox)" 2>/dev/null | grep -q 'statically linked'; then
	missing+=(busybox-static)
fi
# The CDK app runs on jsii, which needs Node.js; the CDK CLI comes from npm (make synth).
# Debian's nodejs works; Node.js 20 or later from your usual source is better.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# Every request the tests send is checked against AWS's API models, which botocore ships
# (internal/fakeaws/apimodel); any botocore python3 imports will do, Debian's included.
python3 -c 'import botocore' >/dev/null 2>&1 || missing+=(python3-botocore)
[[ ${#missing[@]} -eq 0 ]] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: on Debian or Ubuntu run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
