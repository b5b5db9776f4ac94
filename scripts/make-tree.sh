#!/bin/bash
# Create (or bring up to date) the kernel work tree in build/linux:
# the untouched base as the first, tagged commit, then patches/ applied
# with "git am".  Commits in the tree that are not in patches/ are kept
# on a backup branch before the tree is re-synchronised.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TREE=$MAIN_TREE

series_files
series_hash=$(series_hash)
stamp=$SERIES_STAMP

git_tree() { git -C "$TREE" "$@"; }

# A tree made on another base (the pinned base moved on): keep its
# commits in a bundle, drop it and its worktrees, and start again.
if [ -d "$TREE/.git" ] && ! git_tree rev-parse -q --verify "refs/tags/$BASE_TAG" >/dev/null; then
	old=$(git_tree describe --tags --abbrev=0 HEAD 2>/dev/null || echo unknown)
	bundle=$BUILD/linux-$old.bundle
	git_tree bundle create -q "$bundle" --all 2>/dev/null || true
	log "build/linux is on $old, the base is now $BASE_TAG: re-creating it (its commits: ${bundle#$TOP/})"
	rm -rf "$TREE" "$BUILD/bisect" "$BUILD/i386" "$BUILD/linux-debug" "$BUILD/linux-kvmgt" "$BUILD/linux-fault" \
		"$BUILD/bench-base"
fi

if [ ! -d "$TREE/.git" ]; then
	"$TOP/scripts/fetch-base.sh"
	base_git_tree "$TREE" "$BASE_VERSION" "$BASE_TAG"
	rm -f "$stamp"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$series_hash" ]; then
	log "work tree is up to date with patches/ (${#SERIES[@]} patches)"
	exit 0
fi

# The tree may already hold exactly the series (the developer just
# exported it): then there is nothing to apply.
if [ "$(git_tree rev-list --count "$BASE_TAG"..HEAD)" = "${#SERIES[@]}" ] &&
   [ -z "$(git_tree status --porcelain -uno)" ] &&
   "$TOP/scripts/export-series.sh" --compare >/dev/null 2>&1; then
	echo "$series_hash" >"$stamp"
	log "work tree already holds patches/ (${#SERIES[@]} patches)"
	exit 0
fi

[ -z "$(git_tree status --porcelain -uno)" ] ||
	die "$TREE has uncommitted changes: commit and 'make export', or discard them"

if [ "$(git_tree rev-parse HEAD)" != "$(git_tree rev-parse "$BASE_TAG")" ]; then
	backup=backup/$(date +%Y%m%d-%H%M%S)
	git_tree branch -f "$backup" HEAD
	log "previous work tree commits saved on branch $backup"
fi
git_tree am --abort >/dev/null 2>&1 || true
git_tree reset -q --hard "$BASE_TAG"
for p in "${SERIES[@]}"; do
	# --3way is deliberately not used: a patch must apply exactly.
	if ! git_tree am -q --whitespace=nowarn "$p" >"$BUILD/am.log" 2>&1; then
		cat "$BUILD/am.log" >&2
		git_tree am --abort >/dev/null 2>&1 || true
		die "patch does not apply to $BASE_TAG: ${p#$TOP/}"
	fi
done
echo "$series_hash" >"$stamp"
log "applied ${#SERIES[@]} patches on $BASE_TAG"
