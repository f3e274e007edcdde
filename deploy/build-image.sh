#!/usr/bin/env bash
# Builds the Skiff container image without pulling anything: compiles statically linked `skiff`
# and `skiffctl` (glibc, crt-static) on this machine, stages them with a minimal /etc, and runs
# `docker build -f deploy/Dockerfile` on that context.
#
#   deploy/build-image.sh [TAG]      # default tag: skiff:local
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-skiff:local}
TARGET=x86_64-unknown-linux-gnu
CONTEXT=target/image-context
# A UID no distribution hands out, so files in volumes never belong to a host account by accident.
SKIFF_UID=10001

echo "build-image: compiling static binaries (cargo build --release --target $TARGET)" >&2
# --target keeps crt-static off build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$TARGET" -p skiff-broker -p skiff-ctl
for bin in skiff skiffctl; do
  # A dynamic executable names its loader in a PT_INTERP header; a scratch image has none.
  if readelf -l "target/$TARGET/release/$bin" | grep -q INTERP; then
    echo "build-image: target/$TARGET/release/$bin is dynamically linked" >&2
    exit 1
  fi
done

rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/etc" "$CONTEXT/data"
cp "target/$TARGET/release/skiff" "target/$TARGET/release/skiffctl" "$CONTEXT/"
strip "$CONTEXT/skiff" "$CONTEXT/skiffctl"
printf 'root:x:0:0:root:/:/sbin/nologin\nskiff:x:%s:%s:skiff:/var/lib/skiff:/sbin/nologin\n' "$SKIFF_UID" "$SKIFF_UID" \
  >"$CONTEXT/etc/passwd"
printf 'root:x:0:\nskiff:x:%s:\n' "$SKIFF_UID" >"$CONTEXT/etc/group"
printf 'hosts: files dns\n' >"$CONTEXT/etc/nsswitch.conf"

echo "build-image: docker build -t $TAG" >&2
# The legacy builder's deprecation notice is noise here (BuildKit needs buildx, not installed on every
# engine); its output is shown only when the build fails.
if ! out=$(docker build -q -f deploy/Dockerfile -t "$TAG" "$CONTEXT" 2>&1); then
  echo "$out" >&2
  exit 1
fi
docker image ls "$TAG" --format 'build-image: {{.Repository}}:{{.Tag}} {{.Size}}' >&2
