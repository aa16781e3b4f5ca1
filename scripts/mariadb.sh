#!/usr/bin/env bash
# Makes sure a MariaDB server answers on 127.0.0.1:3306 for the tests,
# installing it from the distribution's packages and starting it when absent.
# Prints the DSN the tests should use (CMISSYNC_TEST_MYSQL_DSN) on stdout.
set -euo pipefail

host=127.0.0.1
port=3306
log() { echo "mariadb.sh: $*" >&2; }

can_login() { # user [password]
  mariadb --protocol=tcp -h"$host" -P"$port" -u"$1" ${2:+-p"$2"} -e 'SELECT 1' >/dev/null 2>&1
}

wait_up() {
  for _ in $(seq 1 60); do
    if mariadb-admin --protocol=tcp -h"$host" -P"$port" ping >/dev/null 2>&1 || mariadb-admin ping >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  return 1
}

if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  log "MariaDB is not installed: installing mariadb-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq mariadb-server mariadb-client >&2
fi

if ! mariadb-admin --protocol=tcp -h"$host" -P"$port" ping >/dev/null 2>&1; then
  log "MariaDB is not running: starting it"
  install -d -o mysql -g mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2
  fi
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql >&2
  if ! wait_up; then
    log "MariaDB did not come up within 60 s"
    exit 1
  fi
fi

if can_login root; then
  echo "root@tcp($host:$port)/"
  exit 0
fi

# A fresh Debian install lets root in only over the socket: make a test user.
log "root cannot log in over TCP without a password: creating user cmissync_test"
mariadb -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'cmissync_test'@'127.0.0.1' IDENTIFIED BY 'cmissync_test';
CREATE USER IF NOT EXISTS 'cmissync_test'@'localhost' IDENTIFIED BY 'cmissync_test';
GRANT ALL PRIVILEGES ON `cmissync\_test\_%`.* TO 'cmissync_test'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `cmissync\_test\_%`.* TO 'cmissync_test'@'localhost';
FLUSH PRIVILEGES;
SQL
echo "cmissync_test:cmissync_test@tcp($host:$port)/"
