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
	# The guest boots the kernel uncompressed: build-guest.sh unpacks Debian's bzImage.
	[xz]=xz-utils
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
# (internal/fakeaws/apimodel). A model older than the SDK refuses valid requests, so the
# botocore must be at least the version apimodel names; where python3 has none as new
# (Debian 12's is 1.29), Debian 13's python3-botocore is fetched through apt (its
# signatures checked against the Debian archive keyring) and unpacked into
# .cache/botocore, without installing it or touching the system's apt sources.
cd "$(dirname "$0")/.."
botocore_min=$(cat internal/fakeaws/apimodel/botocore-min)
botocore_cache=.cache/botocore
botocore_ok() {
	local v
	v=$(python3 -c 'import botocore; print(botocore.__version__)' 2>/dev/null) && dpkg --compare-versions "$v" ge "$botocore_min" && return 0
	v=$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$botocore_cache/usr/lib/python3/dist-packages/botocore/__init__.py" 2>/dev/null) &&
		[[ -n $v ]] && dpkg --compare-versions "$v" ge "$botocore_min"
}
fetch_botocore() {
	local tmp opts
	tmp=$(mktemp -d)
	mkdir -p "$tmp/lists/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
	opts=(-qq -o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$tmp/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
		-o APT::Sandbox::User=root)
	echo "install-deps: fetching Debian 13's python3-botocore (API models, at least $botocore_min) into $botocore_cache" >&2
	apt-get "${opts[@]}" update
	(cd "$tmp" && apt-get "${opts[@]}" download python3-botocore 2>/dev/null)
	rm -rf "$botocore_cache"
	mkdir -p "$botocore_cache"
	dpkg-deb -x "$tmp"/python3-botocore_*_all.deb "$botocore_cache"
	rm -rf "$tmp"
	botocore_ok || { echo "install-deps: the fetched botocore is older than $botocore_min" >&2; exit 1; }
}
if ! botocore_ok; then
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1 || [[ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
		echo "install-deps: AWS's API models need botocore $botocore_min or later: pip install 'botocore>=$botocore_min', or set STORECRYPT_BOTOCORE_DATA to its data directory" >&2
		exit 1
	fi
	fetch_botocore
fi
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
