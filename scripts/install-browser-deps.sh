#!/usr/bin/env bash
# Installs what the status page's headless-browser test (`make browser-test`)
# runs: Chromium from Debian, headless, with no window system. Idempotent: a
# machine that has it is left alone.
set -euo pipefail

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if ! have_pkg chromium; then
	echo "install-browser-deps: installing chromium"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
command -v chromium >/dev/null || { echo "install-browser-deps: chromium missing after install" >&2; exit 1; }
echo "install-browser-deps: $(chromium --version 2>/dev/null | head -1)"
