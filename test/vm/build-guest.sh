#!/usr/bin/env bash
# Builds the test guest: a Debian kernel and an initramfs holding busybox, the host's
# cryptsetup, dmsetup, mdadm, blkid, e2fsprogs and xfsprogs with their libraries, and the kernel
# modules the agent needs. Output: $1/vmlinux (the kernel, uncompressed) and $1/initrd.cpio,
# rebuilt only when missing.
# The agent and the guest helper are not in it: the harness appends them as a second
# cpio archive per run, so the (slow) base image is built once.
set -euo pipefail

out=${1:?usage: build-guest.sh OUTDIR}
[[ -s $out/vmlinux && -s $out/initrd.cpio ]] && exit 0

# Modules in load order is what modprobe --show-depends prints; these are the roots.
modules=(dm_crypt dm_mod nvme virtio_pci virtio_net virtio_blk raid0 raid10 md_mod ext4 xfs
	xts aesni_intel algif_skcipher algif_hash crc32c_generic)
tools=(cryptsetup dmsetup mdadm blkid mkfs.ext4 mke2fs e2fsck mkfs.xfs xfs_repair)
# EXTRA_TOOLS adds programs (fio for the benchmarks) to a separate image: fio drags in
# ~70 MB of libraries that every other boot would have to unpack.
read -r -a extra <<<"${EXTRA_TOOLS:-}"
tools+=("${extra[@]}")

for t in "${tools[@]}" busybox depmod xz; do
	command -v "$t" >/dev/null || { echo "build-guest: missing $t (apt-get install cryptsetup-bin mdadm util-linux e2fsprogs xfsprogs busybox-static kmod ${extra[*]})" >&2; exit 1; }
done
file -L "$(command -v busybox)" | grep -q 'statically linked' ||
	{ echo "build-guest: busybox is not static (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

echo "build-guest: fetching the Debian kernel package" >&2
(cd "$work" && apt-get download linux-image-amd64 >/dev/null 2>&1)
dep=$(dpkg-deb -f "$work"/linux-image-amd64_*.deb Depends | grep -o 'linux-image-[^ ,]*-amd64' | head -n1)
(cd "$work" && apt-get download "$dep" >/dev/null 2>&1)
dpkg-deb -x "$work/$dep"_*.deb "$work/kernel"
kver=${dep#linux-image-}
depmod -b "$work/kernel" "$kver"

root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,tmp,mnt,lib/modules,usr/local/bin,var/lib,persist}
cp "$(command -v busybox)" "$root/bin/busybox"

copy_with_libs() {
	local bin=$1 lib
	cp -L "$bin" "$root/sbin/"
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -Ln "$lib" "$root$lib"
	done
}
for t in "${tools[@]}"; do copy_with_libs "$(command -v "$t")"; done
# cryptsetup's argon2 threads dlopen libgcc_s for pthread_exit; ldd does not list it.
gcc_s=$(ldconfig -p | grep -o '/[^ ]*libgcc_s.so.1' | head -n1)
mkdir -p "$root$(dirname "$gcc_s")" && cp -L "$gcc_s" "$root$gcc_s"

: >"$root/etc/modules.order"
for m in "${modules[@]}"; do
	modprobe -d "$work/kernel" -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	rel=${ko#"$work/kernel"}
	mkdir -p "$root$(dirname "$rel")"
	cp "$ko" "$root$rel"
	echo "$rel" >>"$root/etc/modules.order"
done

# xfs takes seconds of an emulated boot to load (3 s of 7.7 s for all modules, measured)
# and few tests mount it: the busybox guest loads it when a mount asks for it, the kernel
# running its modprobe helper (init.sh) with the module's alias.
printf 'fs-xfs %s\n' "$(grep '/xfs\.ko$' "$root/etc/modules.order")" >"$root/etc/modules.lazy"
cat >"$root/sbin/lazy-modprobe" <<'EOF'
#!/bin/busybox sh
# The kernel's request_module (modprobe -q -- ALIAS) for a module of /etc/modules.lazy.
while read -r alias path; do
	for a; do [ "$a" = "$alias" ] && exec insmod "$path"; done
done </etc/modules.lazy
exit 1
EOF
chmod +x "$root/sbin/lazy-modprobe"

cp "$(dirname "$0")/init.sh" "$root/init"
chmod +x "$root/init"
# Uncompressed, as the kernel: QEMU copies it into the guest's memory at host speed, where
# the guest's own inflate of a gzip archive runs emulated at every boot.
(cd "$root" && find . | cpio -o -H newc --quiet) >"$out/initrd.cpio.tmp"
# QEMU boots the kernel's uncompressed ELF image at its PVH entry point: a bzImage first
# unpacks itself (xz), which under software emulation is seconds of every one of the
# suite's boots. The ELF image is the bzImage's first xz stream.
bz=$work/kernel/boot/vmlinuz-$kver
off=$(LC_ALL=C grep -aboUP '\xfd7zXZ\x00' "$bz" | head -n1 | cut -d: -f1)
[[ -n $off ]] || { echo "build-guest: $bz holds no xz-compressed kernel" >&2; exit 1; }
xz -dc --single-stream < <(tail -c +$((off + 1)) "$bz") >"$out/vmlinux.tmp"
[[ $(head -c 4 "$out/vmlinux.tmp") == $'\x7fELF' ]] || { echo "build-guest: the kernel unpacked from $bz is not an ELF image" >&2; exit 1; }
mv "$out/initrd.cpio.tmp" "$out/initrd.cpio"
mv "$out/vmlinux.tmp" "$out/vmlinux"
echo "build-guest: kernel $kver, $(wc -l <"$root/etc/modules.order") modules, initrd $(du -h "$out/initrd.cpio" | cut -f1)" >&2
