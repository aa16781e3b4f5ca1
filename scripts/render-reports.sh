#!/usr/bin/env bash
# Renders the golden report files (load/report/testdata/*.html) to PNG with headless
# Chromium, at 800 pixels wide (a desktop mail client) and 390 pixels wide (a phone), so that a
# person can look at what support staff will read.
#
#   scripts/render-reports.sh [OUTDIR]          # default OUTDIR: report-png/
#
# Regenerate the golden files first when the layout changed:
#   go test ./load/report -run TestRenderGolden -update
#
# Needs Debian's chromium package; when it is missing the script installs it with apt-get
# (run it as root, or install chromium yourself). The test suite never runs this script.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-report-png}
height=${CMISSYNC_PNG_HEIGHT:-2400}

browser=""
for b in chromium chromium-browser; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "render-reports.sh: chromium is not installed: installing Debian's chromium package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
  browser=chromium
fi

mkdir -p "$out"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

shopt -s nullglob
files=(load/report/testdata/*.html)
if [ ${#files[@]} -eq 0 ]; then
  echo "render-reports.sh: no golden HTML files in load/report/testdata" >&2
  exit 1
fi
for f in "${files[@]}"; do
  name=$(basename "$f" .html)
  for width in 800 390; do
    png="$out/$name-$width.png"
    # --no-sandbox: the sandbox needs user namespaces, which containers and root lack.
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
      --user-data-dir="$profile" --force-device-scale-factor=1 \
      --window-size="$width,$height" --screenshot="$png" "file://$PWD/$f" >/dev/null 2>&1
    echo "$png"
  done
done
