#!/bin/sh
# /init of the test initramfs.  Runs the tests of tests/suite.list that
# belong to this boot (kvmtest.boot= on the kernel command line), each
# under its own timeout, and reports over the serial console with
# "@@" marker lines that scripts/run-vm.py parses.
export PATH=/bin:/sbin:/tests
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null

boot=$(sed -n 's/.*kvmtest\.boot=\([^ ]*\).*/\1/p' /proc/cmdline)
only=$(sed -n 's/.*kvmtest\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
scale=$(sed -n 's/.*kvmtest\.tmo_scale=\([0-9]*\).*/\1/p' /proc/cmdline)
echo "@@BOOT $boot $(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"
for p in /sys/module/kvm/parameters/tdp_mmu /sys/module/kvm_amd/parameters/npt; do
	[ -r "$p" ] && echo "@@PARAM $p=$(cat $p)"
done
[ -c /dev/kvm ] || echo "@@NOKVM"

cd /tests
while read -r name boots tmo cmd; do
	case "$name" in ''|\#*) continue ;; esac
	case ",$boots," in *",$boot,"*|*",all,"*) ;; *) continue ;; esac
	if [ -n "$only" ]; then
		case ",$only," in *",$name,"*) ;; *) continue ;; esac
	fi
	case "$cmd" in
	'!skip '*) echo "@@START $name 0"; echo "  | SKIP: ${cmd#!skip }"
		echo "@@END $name rc=4 secs=0"; continue ;;
	esac
	tmo=$((tmo * ${scale:-1}))
	echo "@@START $name $tmo"
	t0=$(cut -d. -f1 /proc/uptime)
	# The test's own output goes to the console as it is produced,
	# prefixed so that it cannot be mistaken for a marker line.
	( timeout -s KILL "$tmo" sh -c "exec $cmd" </dev/null 2>&1
	  echo $? >/tmp/rc ) | sed 's/^/  | /'
	rc=$(cat /tmp/rc)
	t1=$(cut -d. -f1 /proc/uptime)
	echo "@@END $name rc=$rc secs=$((t1 - t0))"
done </tests/suite.list
echo "@@DONE"
sync
reboot -f
