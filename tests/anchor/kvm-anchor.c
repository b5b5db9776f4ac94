// SPDX-License-Identifier: GPL-2.0
/*
 * kvm-anchor: hold one idle VM, with an in-kernel irqchip and one vCPU
 * that never runs, for the whole boot of a stock kernel.
 *
 * Creating the first VM and its first vCPU, and destroying the last,
 * flips static keys (the preempt notifiers, the local APIC's disabled
 * keys).  On a kernel built with CONFIG_JUMP_LABEL=y, as Debian's are,
 * each flip rewrites kernel text, and multi-threaded TCG can livelock
 * on text being rewritten under a running vCPU (test-vm-notes.md: the
 * test kernel is built without jump labels for that reason).  With this
 * VM alive the counts never return to zero, so the tests' VMs come and
 * go without flipping anything.  /init starts it when the boot's plan
 * has an "anchor" line (Kernel.anchor in scripts/kvmtest/suite.py).
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void)
{
	int kvm, vm, vcpu;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("kvm-anchor: /dev/kvm");
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0 || ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		perror("kvm-anchor: KVM_CREATE_VM/KVM_CREATE_IRQCHIP");
		return 1;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		perror("kvm-anchor: KVM_CREATE_VCPU");
		return 1;
	}
	printf("kvm-anchor: holding a VM with one vCPU\n");
	fflush(stdout);
	for (;;)
		pause();
}
