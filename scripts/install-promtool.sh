#!/usr/bin/env bash
# Installs promtool, which checks and unit-tests the alert rules of
# deploy/prometheus (`make rules-test`): Debian's prometheus package ships
# it. Idempotent: a machine that has it is left alone. The package's
# service is not started (no init system here, and it is not needed).
set -euo pipefail

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if ! have_pkg prometheus; then
	echo "install-promtool: installing prometheus (for promtool)"
	export DEBIAN_FRONTEND=noninteractive
	policy=/usr/sbin/policy-rc.d
	made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		made_policy=1
	fi
	trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >/dev/null
fi
command -v promtool >/dev/null || { echo "install-promtool: promtool missing after install" >&2; exit 1; }
echo "install-promtool: $(promtool --version 2>&1 | head -1)"
