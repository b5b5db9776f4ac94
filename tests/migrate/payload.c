// SPDX-License-Identifier: GPL-2.0
/*
 * The L2 guest of the migration tests (tests/migrate/migrate.py): a
 * multiboot kernel that writes the pages of its RAM from 4 MiB up.  With
 * several vCPUs, each writer (one per vCPU) owns the pages i, i + n, ...
 *
 * "all" on the command line: every writer rewrites all its pages, forever
 * (the dirty-rate test: a steady, high rate).
 *
 * Otherwise the pages have different lives, so that a dirty page that the
 * log loses leaves a stale page behind instead of being sent again with
 * everything else:
 *   - hot: the first sixteenth, rewritten on every pass;
 *   - burst: the next three sixteenths, rewritten together every
 *     BURST_EPOCHS epochs and left alone in between;
 *   - once: the rest, written again once each, a slice per epoch over
 *     ONCE_EPOCHS epochs, and then never.
 * An epoch is a second of the RTC as writer 0 sees it tick; epoch 0 ends
 * the first pass, which writes every page once (generation 1).
 *
 * Every page carries its number, its generation, its writer, region and
 * epoch, and a check word; the generation each page should have is kept
 * in the record at RECORD.  A writer compares a page with the record
 * before each write, and every page it owns once an epoch; the first
 * mismatches are kept at VERDICT and printed, so that after a migration
 * the destination's guest checks its own memory.  The host reads the
 * counters at PROGRESS.
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
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
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

/* Per writer i: passes at PROGRESS + 4i, and: */
#define WRITES		(PROGRESS + 0x40)	/* pages written */
#define SWEEPS		(PROGRESS + 0x80)	/* checks of all its pages */
#define EPOCH		(PROGRESS + 0xc0)	/* the epoch, writer 0's clock */
#define VERDICT		(PROGRESS + 0x100)	/* mismatches, then NR_BAD */
#define NR_BAD		8			/* x {page, want, have, word 0} */
#define RECORD		0x310000u		/* the generation of each page */
#define BURST_EPOCHS	2
#define ONCE_EPOCHS	40

enum { HOT = 1, BURST = 2, ONCE = 3 };

static uint32_t nr_pages, hot_end, burst_end, once_slice;
static volatile uint32_t mismatch_lock;

static void serial_hex(uint32_t v)
{
	char buf[11] = "0x";

	for (int k = 0; k < 8; k++)
		buf[2 + k] = "0123456789abcdef"[(v >> (28 - 4 * k)) & 15];
	buf[10] = 0;
	serial_puts(buf);
}

static inline volatile uint32_t *page_of(uint32_t j)
{
	return (volatile uint32_t *)(FIRST + j * 4096u);
}

static inline volatile uint32_t *counter(uint32_t base, uint32_t i)
{
	return (volatile uint32_t *)(base + 4 * i);
}

static void mismatch(uint32_t j, uint32_t want, volatile uint32_t *p)
{
	volatile uint32_t *v = (volatile uint32_t *)VERDICT;
	uint32_t k;

	while (__atomic_exchange_n(&mismatch_lock, 1, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
	k = v[0]++;
	if (k < NR_BAD) {
		v[1 + 4 * k] = j + (FIRST >> 12);
		v[2 + 4 * k] = want;
		v[3 + 4 * k] = p[1];
		v[4 + 4 * k] = p[0];
		serial_puts("payload: MISMATCH page ");
		serial_hex(j + (FIRST >> 12));
		serial_puts(" want generation ");
		serial_hex(want);
		serial_puts(" have ");
		serial_hex(p[1]);
		serial_puts(" page word ");
		serial_hex(p[0]);
		serial_puts("\n");
	}
	__atomic_store_n(&mismatch_lock, 0, __ATOMIC_RELEASE);
}

/*
 * Page j (index from FIRST) against the record.  A mismatch is kept, then
 * the page and the record are made to agree on what the page holds, so
 * that it is reported once.
 */
static void check(uint32_t j)
{
	volatile uint32_t *rec = (volatile uint32_t *)RECORD;
	volatile uint32_t *p = page_of(j);
	uint32_t want = rec[j];

	if (p[0] != j + (FIRST >> 12) || p[1] != want || p[3] != ~(p[0] ^ p[1])) {
		mismatch(j, want, p);
		p[0] = j + (FIRST >> 12);
		p[3] = ~(p[0] ^ p[1]);
		rec[j] = p[1];
	}
}

static void write_page(uint32_t j, uint32_t i, uint32_t region, uint32_t epoch)
{
	volatile uint32_t *rec = (volatile uint32_t *)RECORD;
	volatile uint32_t *p = page_of(j);
	uint32_t gen = rec[j] + 1;

	p[0] = j + (FIRST >> 12);
	p[1] = gen;
	p[2] = i << 24 | region << 16 | (epoch & 0xffff);
	p[3] = ~(p[0] ^ gen);
	rec[j] = gen;
	(*counter(WRITES, i))++;
}

/* The RTC's seconds register; a change ticks the epoch. */
static uint8_t rtc_seconds(void)
{
	outb(0x70, 0x00);
	return inb(0x71);
}

/* The "all" mode: every page of writer i rewritten on each pass. */
static __attribute__((noreturn)) void rewrite_all(uint32_t i, uint32_t n)
{
	uint32_t pass = 0;

	for (;;) {
		pass++;
		for (uint32_t j = i; j < nr_pages; j += n)
			write_page(j, i, HOT, 0);
		*counter(PROGRESS, i) = pass;
	}
}

static __attribute__((noreturn)) void lives(uint32_t i, uint32_t n)
{
	volatile uint32_t *epoch = (volatile uint32_t *)EPOCH;
	uint32_t pass = 1, done = 0, swept = 0;
	uint8_t sec = 0;

	for (uint32_t j = i; j < nr_pages; j += n)
		write_page(j, i, j < hot_end ? HOT : j < burst_end ? BURST : ONCE, 0);
	*counter(PROGRESS, i) = pass;
	if (i == 0)
		sec = rtc_seconds();

	for (;;) {
		uint32_t now;

		for (uint32_t j = i; j < hot_end; j += n) {
			check(j);
			write_page(j, i, HOT, done);
		}
		if (i == 0 && rtc_seconds() != sec) {
			sec = rtc_seconds();
			(*epoch)++;
		}
		now = *epoch;
		while (done < now) {
			done++;
			if (done <= ONCE_EPOCHS) {
				uint32_t lo = burst_end + (done - 1) * once_slice;
				uint32_t hi = lo + once_slice;

				if (hi > nr_pages)
					hi = nr_pages;
				/* The first of writer i's pages at or above lo. */
				for (uint32_t j = lo + (i + n - lo % n) % n; j < hi; j += n) {
					check(j);
					write_page(j, i, ONCE, done);
				}
			}
			if (done % BURST_EPOCHS == 0) {
				for (uint32_t j = hot_end + (i + n - hot_end % n) % n;
				     j < burst_end; j += n) {
					check(j);
					write_page(j, i, BURST, done);
				}
			}
		}
		if (swept != done) {
			for (uint32_t j = i; j < nr_pages; j += n)
				check(j);
			(*counter(SWEEPS, i))++;
			swept = done;
		}
		*counter(PROGRESS, i) = ++pass;
	}
}

static int all_mode;

static __attribute__((noreturn)) void writer(uint32_t i, uint32_t n)
{
	if (all_mode)
		rewrite_all(i, n);
	lives(i, n);
}

void ap_main(uint32_t i)
{
	while (!go)
		__asm__ volatile("pause");
	writer(i, writers);
}

static int has_word(const char *s, const char *w)
{
	for (; *s; s++) {
		const char *a = s, *b = w;

		while (*b && *a == *b)
			a++, b++;
		if (!*b && (*a == 0 || *a == ' '))
			return 1;
	}
	return 0;
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
	if (mem_end <= FIRST + 64 * 4096u ||
	    (mem_end - FIRST) / 4096u * 4 > FIRST - RECORD) {
		serial_puts("payload: memory size not supported\n");
		return;
	}
	nr_pages = (mem_end - FIRST) / 4096u;
	hot_end = nr_pages / 16;
	burst_end = nr_pages / 4;
	once_slice = (nr_pages - burst_end + ONCE_EPOCHS - 1) / ONCE_EPOCHS;
	all_mode = (mbi->flags & 4) && has_word((const char *)mbi->cmdline, "all");
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
	serial_puts(all_mode ? "payload: all pages, " : "payload: hot, burst, once, ");
	serial_puts(n > 1 ? "writing on every CPU\n" : "writing\n");
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
