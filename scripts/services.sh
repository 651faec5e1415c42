#!/usr/bin/env bash
# Install (Debian, as root) and start the local services LEAP's tests and demo need:
# Redis, PostgreSQL, Java + Maven for the Apache Kafka that tests start themselves, and
# Chromium + chromedriver for the browser tests.
# Idempotent: silent when all is in place, one line per action otherwise.
# `services.sh redis` sets up Redis alone (all the demo needs).
set -euo pipefail

only=${1:-all}
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
if [[ $only == all ]]; then
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
    command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || missing+=(maven)
    # Headless browser tests (tests/browser): Debian's Chromium and its driver, never a download.
    [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || missing+=(chromium chromium-driver)
fi

if ((${#missing[@]})); then
    if ((EUID != 0)); then
        echo "missing: ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    echo "installed ${missing[*]}"
fi

# promtool (Debian's prometheus package) validates deploy/prometheus/ in tests/unit/test_deploy.py.
if [[ $only == all ]] && ! command -v promtool >/dev/null; then
    if ((EUID != 0)); then
        echo "missing: promtool; install with: sudo apt-get install -y --no-install-recommends prometheus" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    echo "installed prometheus (for promtool)"
fi

# A Compose validator for deploy/compose.yaml (tests/unit/test_deploy.py): the Docker CLI's
# compose plugin where present, else Debian's docker-compose, which validates without an engine.
if [[ $only == all ]] && ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    if ((EUID != 0)); then
        echo "missing: docker-compose; install with: sudo apt-get install -y docker-compose" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    echo "installed docker-compose (to validate deploy/compose.yaml)"
fi

if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
    for _ in $(seq 50); do
        redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -h 127.0.0.1 ping >/dev/null || { echo "redis-server did not start" >&2; exit 1; }
    echo "started redis-server on 127.0.0.1:6379"
fi

[[ $only == all ]] || exit 0

if ! pg_isready -q -h 127.0.0.1; then
    if ((EUID != 0)); then
        echo "PostgreSQL is not running; start it with: sudo $0" >&2
        exit 1
    fi
    version=$(pg_lsclusters -h | awk '$2 == "main" { print $1; exit }')
    if [[ -z $version ]]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
        pg_createcluster "$version" main >/dev/null
        echo "created PostgreSQL $version cluster main"
    fi
    pg_ctlcluster "$version" main start
    echo "started PostgreSQL $version main"
fi

# A PostgreSQL role for the user running the tests (Unix-socket peer auth, no password), so
# tests can create and drop their own `leaptest_*` databases.
pg_user=${SUDO_USER:-$(id -un)}
if [[ $pg_user != postgres ]] && ! psql -h /var/run/postgresql -U "$pg_user" -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    if ((EUID != 0)); then
        echo "no PostgreSQL role $pg_user; create it with: sudo -u postgres createuser --createdb $pg_user" >&2
        exit 1
    fi
    su postgres -c "createuser --createdb '$pg_user'"
    echo "created PostgreSQL role $pg_user (createdb)"
fi
