#!/usr/bin/env bash
# Runs the whole test suite, on both staging engines (SQLite and MariaDB).
# MariaDB is installed and started when it is not there. Integration tests
# fail instead of skipping when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CMISSYNC_TEST_MYSQL_DSN:-}" ]; then
  CMISSYNC_TEST_MYSQL_DSN=$(scripts/mariadb.sh)
  export CMISSYNC_TEST_MYSQL_DSN
fi
export CGO_ENABLED=1

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test (race detector on: the load step sends in parallel)"
go test -race -count=1 -timeout 20m "$@" ./...
