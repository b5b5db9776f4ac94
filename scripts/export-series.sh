#!/bin/bash
# Export the work tree's commits on top of the base into patches/.
# Output is stable: an unchanged commit exports to a byte-identical file.
#   --compare   export to a temporary directory and compare with patches/
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TREE=$MAIN_TREE

compare=0
[ "${1:-}" = "--compare" ] && compare=1
[ -d "$TREE/.git" ] || die "no work tree at $TREE: run 'make tree' first"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=$(git -C "$TREE" rev-list --count "$BASE_TAG"..HEAD)
if [ "$n" -gt 0 ]; then
	cover=()
	if [ -f "$TOP/series/cover-letter.txt" ] && [ "$n" -gt 1 ]; then
		git -C "$TREE" config "branch.$(git -C "$TREE" symbolic-ref --short HEAD).description" \
			"$(cat "$TOP/series/cover-letter.txt")"
		cover=(--cover-letter --cover-from-description=subject)
	fi
	git -C "$TREE" -c core.abbrev=12 -c diff.noprefix=false format-patch -q \
		--zero-commit --no-signature --base="$BASE_TAG" \
		--numbered "${cover[@]}" -o "$tmp" "$BASE_TAG"..HEAD
	# One line per Subject: header (format-patch folds long ones), so
	# that tools reading the subject line find all of it; git am reads
	# both forms.
	for f in "$tmp"/*.patch; do
		awk 'BEGIN { insub = 0 }
		     insub && /^[ \t]/ { sub(/^[ \t]+/, " "); line = line $0; next }
		     insub { print line; insub = 0 }
		     /^Subject: / && !done { line = $0; insub = 1; done = 1; next }
		     { print }
		     END { if (insub) print line }' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
	done
	# The cover letter's date is the time of export: pin it to the last
	# commit's author date instead.
	if [ -f "$tmp/0000-cover-letter.patch" ]; then
		d=$(git -C "$TREE" log -1 --format='%aD' HEAD)
		sed -i "s/^Date: .*/Date: $d/" "$tmp/0000-cover-letter.patch"
	fi
fi

if [ $compare = 1 ]; then
	diff -r -q "$tmp" "$TOP/patches" --exclude='.*' && exit 0
	exit 1
fi
rm -f "$TOP"/patches/*.patch
cp "$tmp"/*.patch "$TOP/patches/" 2>/dev/null || true
series_hash >"$SERIES_STAMP"
log "exported $n patches to patches/"
