#!/bin/busybox sh
# PID 1 of the test guest. It loads the modules, brings up the user-mode network, mounts
# the disk that stands for the instance's root volume (so the boot unit, the state and the
# mount point survive a reboot, as on EC2), then hands the console to vmexec, which runs the
# harness's commands.
/bin/busybox --install -s /bin
export PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run/cryptsetup /run/lock /tmp
ln -sf /proc/mounts /etc/mtab
# The busybox guest leaves the modules of /etc/modules.lazy to the kernel's request for
# them; systemd's modprobe would look for them in the Debian root, which has none.
lazy=
grep -q storecrypt.systemd /proc/cmdline || lazy=$(cut -d' ' -f2 /etc/modules.lazy)
while read -r m; do
	case " $lazy " in *" $m "*) continue ;; esac
	insmod "$m" 2>/dev/null
done </etc/modules.order
[ -n "$lazy" ] && echo /sbin/lazy-modprobe >/proc/sys/kernel/modprobe

# The systemd guest (kernel option storecrypt.systemd): the root disk is a Debian root.
# Its modules are loaded above; the harness's runner and the files of this run are
# copied in, and systemd takes over.
if grep -q storecrypt.systemd /proc/cmdline; then
	mkdir -p /newroot
	for d in /sys/block/vd*; do
		[ "$(cat "$d/serial" 2>/dev/null)" = root ] && mount -o noatime "/dev/${d##*/}" /newroot
	done
	cp /sbin/vmexec /newroot/sbin/vmexec
	cp -a /usr/local/bin/. /newroot/usr/local/bin/
	for m in dev proc sys; do mount --move /$m /newroot/$m; done
	exec switch_root /newroot /lib/systemd/systemd
fi

ip link set lo up
ip link set eth0 up
ip addr add 169.254.169.15/24 dev eth0
ip route add default via 169.254.169.2

for d in /sys/block/vd*; do
	[ "$(cat "$d/serial" 2>/dev/null)" = root ] && mount -o noatime "/dev/${d##*/}" /persist
done
if grep -q ' /persist ' /proc/mounts; then
	for p in /etc/systemd/system /var/lib/storecrypt /usr/local/sbin /mnt; do
		mkdir -p "/persist$p" "$p"
		mount -o bind "/persist$p" "$p"
	done
fi

echo "guest: up in $(cut -d' ' -f1 /proc/uptime)s"
/sbin/vmexec
echo "guest: vmexec exited $?"
sync
poweroff -f
