# shellcheck shell=bash
# Shared by bench.sh: addresses, tools, configuration rendering and process
# management of the benchmark. Sourced, not run. It sources scripts/demo-lib.sh
# for the Patroni-style Consul helpers (api, role_tags, member keys) and then
# moves the federation to ports of its own, so that a running `make demo`
# does not collide with a benchmark.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/demo-lib.sh
source "$BENCH_DIR/../scripts/demo-lib.sh"

CACHE=$ROOT/.cache
BIN=$CACHE/bin
WORK=$CACHE/bench/run # configurations, zone file, logs of the last run
OUT=$CACHE/bench      # results.md, go-bench.txt
DEMO=$WORK            # demo-lib.sh keeps its session ids under $DEMO/state

ZONE=pg.bench.internal.
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}

# Benchmark federation: dc1 is region main, dc2 region standby.
# shellcheck disable=SC2034 # read by demo-lib.sh
# Below the kernel's ephemeral range (32768-60999), so that no outgoing
# connection of another process holds one of them by chance.
declare -A HTTP_PORT=([dc1]=25500 [dc2]=26500)
declare -A DNS_PORT=([dc1]=25600 [dc2]=26600)
declare -A SERVER_PORT=([dc1]=25300 [dc2]=26300)
declare -A LAN_PORT=([dc1]=25301 [dc2]=26301)
declare -A WAN_PORT=([dc1]=25302 [dc2]=26302)
REGIONDNS_PORT=25353
REGIONDNS_HTTP=127.0.0.1:25380
NSD_PORT=25354
COREDNS_FILE_PORT=25355
COREDNS_FWD_PORT=25356

# The server under test runs on SERVER_CPU, dnsperf on CLIENT_CPU.
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

# render TEMPLATE OUTPUT: replace every @NAME@ by the value of the shell
# variable NAME (the templates live in bench/conf).
render() {
	local text name
	text=$(<"$BENCH_DIR/conf/$1")
	while [[ $text =~ @([A-Z0-9_]+)@ ]]; do
		name=${BASH_REMATCH[1]}
		[[ -v $name ]] || die "template $1: $name is not set"
		text=${text//@$name@/${!name}}
	done
	printf '%s\n' "$text" >"$2"
}

# need_tools: install dnsperf, nsd, dig, curl and taskset with apt-get when
# one of them is missing (a fresh Debian machine has none of the first three).
need_tools() {
	local missing=()
	command -v dnsperf >/dev/null || missing+=(dnsperf)
	command -v nsd >/dev/null || missing+=(nsd)
	command -v dig >/dev/null || missing+=(dnsutils)
	command -v curl >/dev/null || missing+=(curl)
	command -v taskset >/dev/null || missing+=(util-linux)
	((${#missing[@]} == 0)) && return
	local sudo=""
	((EUID == 0)) || sudo=sudo
	log "installing ${missing[*]}"
	$sudo apt-get update -qq
	# Debian starts the packaged nsd service where an init system runs; the
	# benchmark runs its own instance on a loopback port, so that one is not used.
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# build_binaries: regiondns from this tree, Consul (cached, see make consul),
# CoreDNS from the Go module proxy (make coredns, cached under .cache).
build_binaries() {
	mkdir -p "$BIN"
	if [[ -n ${REGIONDNS_BIN:-} ]]; then
		[[ -x $REGIONDNS_BIN ]] || die "REGIONDNS_BIN=$REGIONDNS_BIN is not an executable"
		log "using $REGIONDNS_BIN as regiondns"
		REGIONDNS_FROM="binary $REGIONDNS_BIN"
	else
		log "building regiondns into $BIN"
		(cd "$ROOT" && go build -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
			-o "$BIN/regiondns" ./cmd/regiondns)
		REGIONDNS_BIN=$BIN/regiondns
		REGIONDNS_FROM="built from the working tree; -dirty: with uncommitted changes"
	fi
	if [[ ! -x $BIN/consul ]]; then
		log "building consul into $BIN (a few minutes, once)"
		make -C "$ROOT" consul
	fi
	COREDNS=$BIN/coredns-$COREDNS_VERSION
	if [[ ! -x $COREDNS ]]; then
		log "building CoreDNS $COREDNS_VERSION with go install (a few minutes, once)"
		make -C "$ROOT" coredns COREDNS_VERSION="$COREDNS_VERSION" ||
			die "go install github.com/coredns/coredns@$COREDNS_VERSION failed; set COREDNS_VERSION to one that builds"
	fi
}

# Every process the benchmark starts, by name: stopped by stop_all.
declare -A PID=()

# start NAME LOG COMMAND...: run COMMAND pinned to SERVER_CPU in the background.
start() {
	local name=$1 logf=$2
	shift 2
	taskset -c "$SERVER_CPU" "$@" >"$logf" 2>&1 &
	PID[$name]=$!
}

stop_all() {
	local name pid deadline
	for name in "${!PID[@]}"; do kill "${PID[$name]}" 2>/dev/null || true; done
	deadline=$((SECONDS + 15))
	for name in "${!PID[@]}"; do
		pid=${PID[$name]}
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PID=()
}

# alive NAME: fail loudly when a server died (its log says why).
alive() {
	kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited; see $WORK/$1.log"
}

# port_free PORT: nothing listens on 127.0.0.1:PORT (UDP or TCP).
port_free() {
	! ss -Hlnu "sport = :$1" | grep -q . && ! ss -Hlnt "sport = :$1" | grep -q .
}

check_ports() {
	local p
	for p in "${HTTP_PORT[@]}" "${DNS_PORT[@]}" "${SERVER_PORT[@]}" "${LAN_PORT[@]}" "${WAN_PORT[@]}" \
		"$REGIONDNS_PORT" "${REGIONDNS_HTTP##*:}" "$NSD_PORT" "$COREDNS_FILE_PORT" "$COREDNS_FWD_PORT"; do
		port_free "$p" || die "port $p on 127.0.0.1 is in use (another benchmark running?)"
	done
}

# cpu_ticks PID: user+system clock ticks of PID and all its descendants
# (NSD serves from a child process).
cpu_ticks() {
	local total=0 pid stat fields
	for pid in $(descendants "$1"); do
		{ read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue
		stat=${stat##*) } # fields after "pid (comm) "
		read -ra fields <<<"$stat"
		total=$((total + fields[11] + fields[12]))
	done
	echo "$total"
}

descendants() {
	local child
	echo "$1"
	for child in $(pgrep -P "$1"); do descendants "$child"; done
}

# cpu_busy CPU: busy clock ticks of one CPU so far, whoever ran there
# (user, nice, system, irq, softirq, steal from /proc/stat).
cpu_busy() {
	awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
