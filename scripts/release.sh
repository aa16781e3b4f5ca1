#!/usr/bin/env bash
# Builds a release of cmissync into dist/ (or $CMISSYNC_DIST):
#
#   cmissync-VERSION-OS-ARCH.tar.gz         a static binary (CGO_ENABLED=0): every source
#                                           but Oracle (sql with mysql or sqlite, csv)
#   cmissync-VERSION-OS-ARCH-oracle.tar.gz  with the Oracle driver (cgo; needs a C compiler
#                                           here and Oracle Instant Client where it runs)
#   SHA256SUMS
#
# Each archive holds the binary, the manual pages (man/man1), a complete example
# configuration, the systemd units and sysusers file, and the README.
#
#   scripts/release.sh [VERSION]     # default: git describe, else "dev"
#
# The build is reproducible: paths are trimmed, and file dates (archives, manual
# pages) come from SOURCE_DATE_EPOCH, by default the last commit's date.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
goos=$(go env GOOS)
goarch=$(go env GOARCH)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
out=${CMISSYNC_DIST:-dist}
rm -rf "$out"
mkdir -p "$out"

# main.version is what `cmissync --version` prints.
ldflags="-s -w -X main.version=$version"

build() { # NAME CGO_ENABLED
  local name=$1 cgo=$2
  local dir="$out/$name"
  echo "release.sh: building $name (CGO_ENABLED=$cgo)" >&2
  mkdir -p "$dir/man/man1" "$dir/systemd"
  CGO_ENABLED=$cgo go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$dir/cmissync" ./cmd/cmissync
  if [ "$goos" = "$(go env GOHOSTOS)" ] && [ "$goarch" = "$(go env GOHOSTARCH)" ]; then
    "$dir/cmissync" man --dir "$dir/man/man1" >/dev/null
    "$dir/cmissync" config --example >"$dir/cmissync.example.toml"
  else
    go run ./cmd/cmissync man --dir "$dir/man/man1" >/dev/null
    go run ./cmd/cmissync config --example >"$dir/cmissync.example.toml"
  fi
  gzip -9n "$dir"/man/man1/*.1
  cp scripts/systemd/cmissync.service scripts/systemd/cmissync.timer scripts/systemd/cmissync.sysusers "$dir/systemd/"
  cp README.md "$dir/"
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$out" -cf - "$name" | gzip -9n >"$out/$name.tar.gz"
}

static="cmissync-$version-$goos-$goarch"
build "$static" 0
# Static means no program interpreter and no shared libraries to find.
if ldd "$out/$static/cmissync" >/dev/null 2>&1; then
  echo "release.sh: $static/cmissync is dynamically linked" >&2
  exit 1
fi
build "$static-oracle" 1

(cd "$out" && sha256sum ./*.tar.gz >SHA256SUMS)
echo "release.sh: done:" >&2
ls -l "$out"/*.tar.gz "$out/SHA256SUMS" >&2
