#!/usr/bin/env bash
# The load benchmark of `make bench`: regiondns against NSD, CoreDNS (file)
# and Consul DNS serving the same records, and regiondns's delegated path
# against CoreDNS forward+cache in front of the same Consul agent. Each server
# runs pinned to CPU 0 (GOMAXPROCS=1 for Go servers), dnsperf pinned to CPU 1;
# ROUNDS rounds alternate between the servers and the medians are reported,
# then ROUNDS alternated runs per server at half its median rate measure
# p50 and p99 latency (medians of the runs).
#
# Environment (defaults): ROUNDS (3), DURATION (10 s per run), CLUSTERS (20),
# CLIENTS (dnsperf -c, 8), OUTSTANDING (dnsperf -q, 200), COREDNS_VERSION
# (v1.15.0), REGIONDNS_BIN (a regiondns binary to measure instead of building
# this tree, e.g. to compare two revisions), SERVERS (all: regiondns nsd coredns-file consul-dns
# regiondns-deleg coredns-fwd), BENCH_ALLOW_MISMATCH (0).
#
# `bench.sh serve` starts the same servers and keeps them up until Ctrl-C.
# Everything listens on 127.0.0.1 only and stops at the end or on Ctrl-C.
# Results: .cache/bench/results.md; logs and configurations: .cache/bench/run.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/servers.sh
source "$BENCH_DIR/servers.sh"
# shellcheck source=bench/load.sh
source "$BENCH_DIR/load.sh"
# shellcheck source=bench/report.sh
source "$BENCH_DIR/report.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLUSTERS=${CLUSTERS:-20}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}
SERVERS=${SERVERS:-regiondns nsd coredns-file consul-dns regiondns-deleg coredns-fwd}
((CLUSTERS >= 1 && CLUSTERS <= 250)) || die "CLUSTERS=$CLUSTERS: want 1 to 250"
((ROUNDS >= 1 && DURATION >= 1)) || die "ROUNDS=$ROUNDS DURATION=$DURATION: want at least 1"
(($(nproc) >= 2)) || log "warning: $(nproc) CPU: server and dnsperf share it"

cleanup() {
	trap - INT TERM EXIT
	log "stopping the benchmark's servers"
	stop_all
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_tools
build_binaries
check_ports
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"

log "starting two Consul datacenters (logs in $WORK)"
start_consul
log "registering $CLUSTERS Patroni clusters (leader + 2 replicas in dc1, standby leader + replica in dc2)"
register_clusters
log "starting regiondns on 127.0.0.1:$REGIONDNS_PORT"
start_regiondns
write_zone_file
log "starting NSD (:$NSD_PORT), CoreDNS file (:$COREDNS_FILE_PORT), CoreDNS forward+cache (:$COREDNS_FWD_PORT)"
start_peers
write_query_files
log "checking that regiondns, NSD and CoreDNS give the same answers"
if [[ ${BENCH_ALLOW_MISMATCH:-0} == 1 ]]; then
	check_same_answers "$REGIONDNS_PORT" "$NSD_PORT" "$COREDNS_FILE_PORT" || true
else
	check_same_answers "$REGIONDNS_PORT" "$NSD_PORT" "$COREDNS_FILE_PORT"
fi

if [[ ${1:-} == serve ]]; then
	cat <<EOF

Serving until Ctrl-C (for profiling or dnsperf by hand), all on 127.0.0.1:
  regiondns $REGIONDNS_PORT (HTTP $REGIONDNS_HTTP), NSD $NSD_PORT, CoreDNS file $COREDNS_FILE_PORT,
  CoreDNS forward+cache $COREDNS_FWD_PORT, Consul DNS dc1 ${DNS_PORT[dc1]} / dc2 ${DNS_PORT[dc2]}
  query files: $WORK/zone.queries, $WORK/consul.queries
  e.g. taskset -c $CLIENT_CPU dnsperf -s 127.0.0.1 -p $REGIONDNS_PORT -d $WORK/zone.queries -l 10 -c $CLIENTS -q $OUTSTANDING
EOF
	wait -n "${PID[@]}" || true
	die "a server exited; see $WORK/*.log"
fi

# server name -> "port query-file"
declare -A TARGET=(
	[regiondns]="$REGIONDNS_PORT $WORK/zone.queries"
	[nsd]="$NSD_PORT $WORK/zone.queries"
	[coredns-file]="$COREDNS_FILE_PORT $WORK/zone.queries"
	[consul-dns]="${DNS_PORT[dc1]} $WORK/consul.queries"
	[regiondns-deleg]="$REGIONDNS_PORT $WORK/consul.queries"
	[coredns-fwd]="$COREDNS_FWD_PORT $WORK/consul.queries"
)
for s in $SERVERS; do [[ -v TARGET[$s] ]] || die "SERVERS: unknown server $s"; done

: >"$WORK/max.tsv"
: >"$WORK/half.tsv"
log "load: $ROUNDS rounds x ${DURATION}s per server, dnsperf -c $CLIENTS -q $OUTSTANDING (about $((2 * ROUNDS * $(wc -w <<<"$SERVERS") * (DURATION + 3))) s)"
for ((round = 1; round <= ROUNDS; round++)); do
	for s in $SERVERS; do
		# shellcheck disable=SC2086 # port and file
		measure "$s" ${TARGET[$s]} "$round"
	done
done
log "latency at half of each server's median rate: $ROUNDS rounds, alternated"
for ((round = 1; round <= ROUNDS; round++)); do
	for s in $SERVERS; do
		max=$(median_of "$s" 3 "$WORK/max.tsv")
		# shellcheck disable=SC2086 # port and file
		measure_latency "$s" ${TARGET[$s]} "$(awk -v m="$max" 'BEGIN { printf "%d", m / 2 }')"
	done
done

report | tee "$OUT/results.md"
log "results written to $OUT/results.md"
