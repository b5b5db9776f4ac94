#!/bin/bash
# The migration archive, build/out/migrate.cpio.gz: what the boots that
# run tests/migrate/migrate.py append to the common initramfs (see
# ARCHIVES in scripts/kvmtest/suite.py):
#   - Debian 12's own qemu-system-x86_64 as installed from its package
#     (unmodified), the shared libraries it and Python load, the firmware
#     a "-machine pc -kernel multiboot.elf" guest needs;
#   - Debian's python3 with the part of its standard library that
#     migrate.py imports (found by importing it), and migrate.py as
#     /tests/migrate;
#   - the L2 guest, tests/migrate/payload.c, built here as a 32-bit
#     multiboot ELF.
# Rebuilt only when one of its inputs changes (the stamp is their hash).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

src=$TOP/tests/migrate
out=$OUT/migrate.cpio.gz
qemu=/usr/bin/qemu-system-x86_64
py=/usr/bin/python3
for f in "$qemu" "$py"; do
	[ -x "$f" ] || die "$f is missing: run 'make deps'"
done
firmware=(/usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin
	  /usr/share/qemu/multiboot_dma.bin /usr/share/qemu/linuxboot_dma.bin)
versions=$(dpkg-query -W -f '${Package} ${Version}\n' qemu-system-x86 seabios python3.11-minimal)

stamp=$( { cat "$0" "$src"/payload.c "$src"/payload.ld "$src"/migrate.py; echo "$versions"; sha256sum "$qemu" "$(readlink -f "$py")"; } |
	sha256sum | cut -d' ' -f1)
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
	log "migration archive: up to date ($(stat -c %s "$out") bytes)"
	exit 0
fi
start=$SECONDS
root=$OUT/migrate-root
rm -rf "$root"
mkdir -p "$root"/{tests,lib64,usr/bin,usr/lib/x86_64-linux-gnu,usr/share/qemu,usr/share/kvmtest}

# The payload: no libc, no PIC, loaded at 1 MiB (payload.ld).
gcc -m32 -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
	-fno-asynchronous-unwind-tables -O2 -Wall -Werror -nostdlib \
	-c "$src/payload.c" -o "$OUT/payload.o"
ld -m elf_i386 --no-warn-rwx-segments -T "$src/payload.ld" -o "$root/usr/share/kvmtest/payload.elf" "$OUT/payload.o"

cp "$qemu" "$root/usr/bin/"
cp "$(readlink -f "$py")" "$root/usr/bin/python3"
for f in "${firmware[@]}"; do
	cp -L "$f" "$root/usr/share/qemu/"
done
echo "$versions" >"$root/usr/share/kvmtest/VERSIONS"

# Python's standard library as far as migrate.py uses it, with the
# bytecode Debian compiled at installation.  textwrap: argparse imports
# it when it prints a usage error.
mods=$("$py" -I -S -c '
import sys
sys.path.insert(0, sys.argv[1])
import migrate, textwrap, encodings.ascii, encodings.latin_1
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if f and f.startswith(sys.prefix + "/lib/python3"):
        print(f)
' "$src")
pylib=$("$py" -I -S -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
n=0
for f in $mods; do
	rel=${f#/}
	mkdir -p "$root/$(dirname "$rel")"
	cp "$f" "$root/$rel"
	pyc=$(dirname "$f")/__pycache__/$(basename "${f%.py}").cpython-311.pyc
	if [ "${f%.py}" != "$f" ] && [ -f "$pyc" ]; then
		mkdir -p "$root/$(dirname "$rel")/__pycache__"
		cp "$pyc" "$root/$(dirname "$rel")/__pycache__/"
	fi
	n=$((n + 1))
done
# The marker Python looks for to find its prefix.
[ -f "$root$pylib/os.py" ] || die "os.py is not among the modules found"

# Shared libraries: QEMU's, Python's, its extension modules'.
libs=$(for b in "$qemu" "$py" $(printf '%s\n' $mods | grep '\.so$'); do
	ldd "$b" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}'
done | sort -u)
for l in $libs; do
	case $l in
	/lib64/*) cp -L "$l" "$root/lib64/" ;;
	*) cp -L "$l" "$root/usr/lib/x86_64-linux-gnu/" ;;
	esac
done
[ -f "$root/lib64/ld-linux-x86-64.so.2" ] || die "the dynamic loader was not found by ldd"

install -m 755 "$src/migrate.py" "$root/tests/migrate"
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
log "migration archive: QEMU $(dpkg-query -W -f '${Version}' qemu-system-x86), $(echo "$libs" | wc -l) libraries, $n Python modules; $(du -sm "$root" | cut -f1) MiB unpacked, $(stat -c %s "$out") bytes packed, built in $((SECONDS - start)) s"
