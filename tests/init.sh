#!/bin/sh
# /init of the test initramfs: runs this boot's plan, /plan, which the host
# wrote (scripts/kvmtest/suite.py, Boot.plan_text) and appended to the
# initramfs, and reports in KTAP (TAP version 13) on the serial console,
# the way kselftest's runner does: each test's output prefixed with "# ",
# "ok N name", "ok N name # SKIP" (exit 4, KSFT_SKIP), "not ok N name #
# TIMEOUT T seconds", "not ok N name # exit=RC"; a multi-part test as
# indented subtests.  Judging the output is the host's job.
#
# /plan: "boot NAME", "param MODULE PARAM" (each read back from sysfs
# into the header), "output tty|kmsg" (kmsg: every line goes through
# /dev/kmsg, for a machine whose UART starves tty output), "plan N"
# (top-level entries), then one line per entry: "test TIMEOUT NAME
# COMMAND...", "skip NAME REASON", or "group NAME N" followed by its N
# test/skip lines; "trace EVENT,...": KVM trace events recorded through
# the boot (trace_start).  "anchor": hold an idle VM
# for the whole boot (a stock kernel with jump labels).  /modules/order,
# if present: modules to load first.
export PATH=/bin:/sbin:/tests
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null

out=/dev/console
grep -qx 'output kmsg' /plan 2>/dev/null && out=/dev/kmsg
# One write per line: /dev/kmsg takes one record per write.
say() { echo "$*" >"$out"; }
# A test's output, prefixed with $1.
prefix() { while IFS= read -r l || [ -n "$l" ]; do echo "$1$l" >"$out"; done; }

finish() {
	sync
	reboot -f
}

say "TAP version 13"
if [ ! -r /plan ]; then
	say "Bail out! no /plan in the initramfs"
	finish
fi
say "# kernel $(uname -r) $(uname -v)"
# A kernel whose KVM is modular (Debian's 6.1, the benchmarks' mainline
# anchor): /modules/order lists its modules in load order, and each gets
# the parameters the kernel command line gives it ("kvm.tdp_mmu=0"),
# which only modprobe would otherwise pass on.
if [ -r /modules/order ]; then
	for ko in $(cat /modules/order); do
		m=$(basename "$ko" .ko | tr - _)
		args=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^$m\.//p" | tr '\n' ' ')
		say "# insmod $ko $args"
		# shellcheck disable=SC2086
		insmod "/modules/$ko" $args 2>&1 | prefix "# "
	done
fi
say "# cpus $(grep -c ^processor /proc/cpuinfo)"
while read -r kind a b rest; do
	case "$kind" in
	boot) say "# boot $a" ;;
	trace) trace=$a ;;
	param) say "# param $a.$b=$(cat "/sys/module/$a/parameters/$b" 2>/dev/null || echo '(absent)')" ;;
	esac
done </plan
if [ ! -c /dev/kvm ]; then
	say "Bail out! /dev/kvm is missing"
	finish
fi
# A stock kernel with jump labels: an idle VM for the whole boot, so that
# the tests' VMs flip no static keys (tests/anchor/kvm-anchor.c).
if grep -qx anchor /plan; then
	kvm-anchor 2>&1 | prefix "# " &
	sleep 1
fi

uptime_s() { cut -d. -f1 /proc/uptime; }

# "trace EVENT,...": those KVM events are recorded through the whole boot,
# the buffer cleared before each test; a test that fails prints the last
# of them (trace_tail).
trace_start() {
	tr=/sys/kernel/tracing
	echo 0 >$tr/tracing_on
	echo 512 >$tr/buffer_size_kb
	for e in $(echo "$trace" | tr , ' '); do
		if [ -e $tr/events/kvm/$e/enable ]; then
			echo 1 >$tr/events/kvm/$e/enable
		else
			say "# kvmtest: trace: no event kvm:$e in this kernel"
		fi
	done
	echo 1 >$tr/tracing_on
	say "# kvmtest: tracing kvm:{$trace}"
}

trace_tail() {
	tr=/sys/kernel/tracing
	echo 0 >$tr/tracing_on
	grep -v '^#' $tr/trace >/tmp/trace
	echo "kvmtest: KVM's last events ($(grep -c . /tmp/trace) in the buffer):"
	tail -n 40 /tmp/trace | sed 's/^ */    /'
	# Each vCPU thread that exited with a shutdown: its own last events
	# before it (the thread is the first column).
	for task in $(grep 'reason shutdown' /tmp/trace | awk '{print $1}' | sort -u); do
		echo "kvmtest: the last events of $task, up to its shutdown exit:"
		grep "^ *$task " /tmp/trace | grep -B 24 -m 1 'reason shutdown' | sed 's/^ */    /'
	done
	rm -f /tmp/trace
	echo >$tr/trace
	echo 1 >$tr/tracing_on
}

# hang_report PID: what a test that gave no result in time was doing,
# before it is killed: each thread's state, wait channel and kernel
# stack, and one second of KVM's trace events (the nested guest's exits
# with their RIPs, the ring's pushes, resets and full exits), so that a
# hang is a report and not just a timeout.
hang_report() {
	echo "kvmtest: no result in $tmo s; pid $1 before SIGKILL:"
	for t in /proc/"$1"/task/*; do
		echo "  thread ${t##*/} $(cut -d' ' -f2,3 "$t/stat" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"
		sed 's/^/    /' "$t/stack" 2>/dev/null
	done
	if [ -n "$trace" ]; then
		trace_tail
		return 0
	fi
	tr=/sys/kernel/tracing
	[ -d $tr/events/kvm ] || return 0
	echo 0 >$tr/tracing_on
	echo >$tr/trace
	for e in kvm_exit kvm_entry kvm_page_fault kvm_inj_exception kvm_inj_virq \
		 kvm_dirty_ring_push kvm_dirty_ring_reset kvm_dirty_ring_exit; do
		[ -e $tr/events/kvm/$e/enable ] && echo 1 >$tr/events/kvm/$e/enable
	done
	echo 1 >$tr/tracing_on
	sleep 1
	echo 0 >$tr/tracing_on
	echo "  KVM's events in 1 s: $(grep -vc '^#' $tr/trace), the last 40:"
	grep -v '^#' $tr/trace | tail -n 40 | sed 's/^ */    /'
	echo 0 >$tr/events/enable
	echo >$tr/trace
	echo 1 >$tr/tracing_on
}

# run_once INDENT TIMEOUT COMMAND...: one run, its output to the console
# and to /tmp/out; sets $rc and $secs.  A run still going after TIMEOUT
# seconds gets hang_report, then SIGKILL (the watchdog's sleep keeps no
# end of the pipe open).
run_once() {
	ind=$1 tmo=$2
	shift 2
	t0=$(uptime_s)
	( sh -c "exec $*" </dev/null 2>&1 &
	  pid=$!
	  ( sleep "$tmo" </dev/null >/dev/null 2>&1
	    hang_report "$pid" 2>&1
	    kill -KILL "$pid" 2>/dev/null ) &
	  dog=$!
	  wait "$pid"
	  echo $? >/tmp/rc
	  kill "$dog" 2>/dev/null ) 2>&1 | tee /tmp/out | prefix "$ind# "
	rc=$(cat /tmp/rc)
	secs=$(($(uptime_s) - t0))
}

# run_test INDENT NUMBER TIMEOUT NAME COMMAND...; sets $status to
# ok, skip or fail.
run_test() {
	ind=$1 num=$2 tmo=$3 name=$4
	shift 4
	say "$ind# selftests: kvm: $name: $* (timeout $tmo s)"
	[ -z "$trace" ] || echo >/sys/kernel/tracing/trace
	run_once "$ind" "$tmo" "$@"
	case $rc in
	0|4|137) ;;
	*) [ -z "$trace" ] || trace_tail | prefix "$ind# " ;;
	esac
	if [ "$rc" = 0 ]; then
		say "${ind}ok $num $name"; status=ok
	elif [ "$rc" = 4 ]; then
		say "${ind}ok $num $name # SKIP"; status=skip
	elif [ "$rc" = 137 ] && [ "$secs" -ge "$tmo" ]; then
		# Killed by the watchdog: 137, as by another SIGKILL (the OOM
		# killer's); only the time tells them apart.
		say "${ind}not ok $num $name # TIMEOUT $tmo seconds"; status=fail
	else
		say "${ind}not ok $num $name # exit=$rc"; status=fail
	fi
}

[ -z "$trace" ] || trace_start
cd /tests
n=0 sub=0 gname='' gleft=0 gfail=0 gpass=0
while read -r kind a b rest; do
	case "$kind" in
	plan) say "1..$a"; continue ;;
	group)
		n=$((n + 1)) gname=$a gleft=$b sub=0 gfail=0 gpass=0
		say "    # Subtest: $a"
		say "    1..$b"
		continue ;;
	test|skip) ;;
	*) continue ;;
	esac
	ind='' num=
	if [ "$gleft" -gt 0 ]; then
		sub=$((sub + 1)) ind='    ' num=$sub
	else
		n=$((n + 1)) num=$n
	fi
	if [ "$kind" = skip ]; then
		say "${ind}ok $num $a # SKIP $b $rest"; status=skip
	else
		run_test "$ind" "$num" "$a" "$b" $rest
	fi
	if [ "$gleft" -gt 0 ]; then
		case $status in fail) gfail=1 ;; ok) gpass=1 ;; esac
		gleft=$((gleft - 1))
		if [ "$gleft" = 0 ]; then
			if [ $gfail = 1 ]; then say "not ok $n $gname"
			elif [ $gpass = 1 ]; then say "ok $n $gname"
			else say "ok $n $gname # SKIP"; fi
		fi
	fi
done </plan
finish
