// SPDX-License-Identifier: GPL-2.0
/*
 * The L2 guest of the migration tests (tests/migrate/migrate.py): a
 * multiboot kernel that rewrites every page of its RAM from 4 MiB up,
 * forever, with the page's own number and the number of the pass, so that
 * every page is distinct and keeps changing.  With several vCPUs, each
 * starts and writes its share of the pages.  The pass numbers are kept
 * at PROGRESS, where the host reads them to see the guest running.
 */
#include <stdint.h>

#define MB_MAGIC	0x1BADB002u
#define MB_FLAGS	0x00000003u	/* page-aligned modules, memory info */
#define FIRST		(4u << 20)
#define PROGRESS	0x300000u

__attribute__((section(".multiboot"), used, aligned(4)))
static const uint32_t mb_header[3] = {
	MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
};

struct mb_info {
	uint32_t flags, mem_lower, mem_upper;
};

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static void serial_puts(const char *s)
{
	while (*s)
		outb(0x3f8, *s++);
}

/* Flat 32-bit code (0x08) and data (0x10) segments, for every CPU. */
__attribute__((aligned(8)))
__attribute__((used)) static const uint64_t gdt[3] = {
	0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull
};

/* CPUs that have checked in (the BSP is CPU 0); the writers' go. */
__attribute__((used)) static volatile uint32_t cpus_up = 1;
static volatile uint32_t go, writers;
static uint32_t mem_end;

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

/* The number of vCPUs, from QEMU's fw_cfg (FW_CFG_NB_CPUS). */
static uint32_t nr_cpus(void)
{
	uint32_t n;

	outw(0x510, 0x05);
	n = inb(0x511);
	n |= inb(0x511) << 8;
	return n ? n : 1;
}

static void delay(uint32_t n)
{
	while (n--)
		__asm__ volatile("pause");
}

/* The local APIC's interrupt command register, all CPUs but this one. */
static void ipi_all_but_self(uint32_t icr)
{
	volatile uint32_t *apic = (volatile uint32_t *)0xfee00000u;

	apic[0x300 / 4] = icr | (3u << 18);
	while (apic[0x300 / 4] & (1u << 12))
		;
}

/*
 * Writer i of n rewrites the pages i, i + n, i + 2n, ... from FIRST up,
 * and keeps its pass number at PROGRESS + 4 * i.
 */
static __attribute__((noreturn)) void writer(uint32_t i, uint32_t n)
{
	volatile uint32_t *progress = (volatile uint32_t *)PROGRESS;
	uint32_t pass = 0;

	for (;;) {
		pass++;
		for (uint32_t a = FIRST + i * 4096; a < mem_end; a += n * 4096) {
			volatile uint32_t *p = (volatile uint32_t *)a;

			p[0] = a >> 12;
			p[1] = pass;
		}
		progress[i] = pass;
	}
}

void ap_main(uint32_t i)
{
	while (!go)
		__asm__ volatile("pause");
	writer(i, writers);
}

extern const char tramp_start[], tramp_end[];

void payload_main(uint32_t magic, struct mb_info *mbi)
{
	uint32_t n = nr_cpus();

	if (magic != 0x2BADB002u || !(mbi->flags & 1)) {
		serial_puts("payload: no multiboot memory information\n");
		return;
	}
	/* mem_upper: KiB above 1 MiB. */
	mem_end = (mbi->mem_upper + 1024) * 1024u;
	if (n > 1) {
		/* The APs start at 0x8000 (SIPI vector 8) in real mode. */
		for (uint32_t k = 0; k < (uint32_t)(tramp_end - tramp_start); k++)
			((volatile char *)0x8000)[k] = tramp_start[k];
		ipi_all_but_self(0x4500);		/* INIT, assert */
		delay(100000);
		ipi_all_but_self(0x4608);		/* SIPI, vector 8 */
		delay(10000);
		ipi_all_but_self(0x4608);
		for (uint32_t k = 0; cpus_up < n && k < 100000000u; k++)
			__asm__ volatile("pause");
		if (cpus_up != n) {
			serial_puts("payload: not every CPU came up\n");
			return;
		}
	}
	writers = n;
	go = 1;
	serial_puts(n > 1 ? "payload: writing on every CPU\n" : "payload: writing\n");
	writer(0, n);
}

/*
 * The BSP's entry, and the APs' trampoline: tramp_start..tramp_end is
 * copied to 0x8000 and runs there in real mode, addressing itself through
 * CS (0x800); it loads the GDT, enters protected mode and jumps to
 * ap_start, which takes a CPU number and a stack of 16 KiB below the
 * BSP's.
 */
__asm__(".globl _start\n_start:\n"
	"  lgdt gdt_ptr\n"
	"  ljmp $0x08, $1f\n"
	"1: mov $0x10, %ecx\n"
	"  mov %ecx, %ds\n  mov %ecx, %es\n  mov %ecx, %ss\n"
	"  mov %ecx, %fs\n  mov %ecx, %gs\n"
	"  mov $0x200000, %esp\n"
	"  push %ebx\n  push %eax\n"
	"  call payload_main\n"
	"2: cli\n  hlt\n  jmp 2b\n"
	".p2align 3\n"
	"gdt_ptr:\n  .word 23\n  .long gdt\n"
	".code16\n"
	".globl tramp_start, tramp_end\n"
	"tramp_start:\n"
	"  cli\n"
	"  lgdtl %cs:(tramp_gdt_ptr - tramp_start)\n"
	"  mov %cr0, %eax\n  or $1, %al\n  mov %eax, %cr0\n"
	"  ljmpl $0x08, $ap_start\n"
	".p2align 3\n"
	"tramp_gdt_ptr:\n  .word 23\n  .long gdt\n"
	"tramp_end:\n"
	".code32\n"
	"ap_start:\n"
	"  mov $0x10, %ecx\n"
	"  mov %ecx, %ds\n  mov %ecx, %es\n  mov %ecx, %ss\n"
	"  mov %ecx, %fs\n  mov %ecx, %gs\n"
	"  mov $1, %eax\n"
	"  lock xadd %eax, cpus_up\n"
	"  mov %eax, %ecx\n  shl $14, %ecx\n"
	"  mov $0x200000, %esp\n  sub %ecx, %esp\n"
	"  push %eax\n"
	"  call ap_main\n"
	"3: cli\n  hlt\n  jmp 3b\n");
