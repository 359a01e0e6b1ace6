#!/usr/bin/env bash
# Installs what the Patroni end-to-end tests (e2e/patroni, `make e2e-patroni`)
# run: Patroni 3.0.2 with its Consul client, PostgreSQL 15, PgBouncer 1.18 and
# dig, all from Debian 12. Idempotent: a machine that has them is left alone.
#
# Debian's postgresql package creates a default cluster (15/main, port 5432)
# that systemd would start; there is no systemd here, and the tests run their
# own clusters on their own ports, so the default cluster is only made sure
# to be down (it is never started, nor relied on).
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

for p in patroni python3-consul postgresql pgbouncer dnsutils; do
	have_pkg "$p" || need+=("$p")
done

if [ ${#need[@]} -gt 0 ]; then
	echo "install-patroni-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# No init system: keep package scripts from trying to start services.
	policy=/usr/sbin/policy-rc.d
	made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		made_policy=1
	fi
	trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Stop the default cluster(s) if a package script started one.
if have_cmd pg_lsclusters; then
	pg_lsclusters --no-header 2>/dev/null | while read -r ver name port status _; do
		if [ "$status" = online ]; then
			echo "install-patroni-deps: stopping the default cluster $ver/$name (port $port)"
			pg_ctlcluster "$ver" "$name" stop -m fast || true
		fi
	done
fi

# The packaged pgbouncer service is not used either.
if have_cmd pgbouncer && [ -f /run/postgresql/pgbouncer.pid ]; then
	pid=$(cat /run/postgresql/pgbouncer.pid || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" || true
	fi
fi

for c in patroni patronictl pgbouncer psql dig; do
	have_cmd "$c" || { echo "install-patroni-deps: $c missing after install" >&2; exit 1; }
done
ls /usr/lib/postgresql/15/bin/postgres >/dev/null
echo "install-patroni-deps: $(patroni --version 2>&1 | head -1), $(pgbouncer --version 2>&1 | head -1), $(/usr/lib/postgresql/15/bin/postgres --version)"
