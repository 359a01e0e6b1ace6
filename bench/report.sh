# shellcheck shell=bash
# The report of a benchmark run, in Markdown: the table, the machine, the
# parameters and (when `make bench` just wrote them) the Go benchmarks.
# Sourced by bench.sh.

declare -A LABEL=(
	[regiondns]="regiondns"
	[nsd]="NSD"
	[coredns-file]="CoreDNS file"
	[consul-dns]="Consul DNS"
	[regiondns-deleg]="regiondns → Consul (LRU)"
	[coredns-fwd]="CoreDNS forward+cache → Consul"
)

report() {
	echo "## Load: zone path and delegated path"
	echo
	echo "$(date -u '+%F %H:%M UTC'), $ROUNDS rounds × ${DURATION} s per server, alternated; medians."
	echo "Server on CPU $SERVER_CPU (GOMAXPROCS=1 for Go servers), dnsperf on CPU $CLIENT_CPU"
	echo "(\`-c $CLIENTS -q $OUTSTANDING -t 1\`); $CLUSTERS clusters, $(wc -l <"$WORK/zone.queries") queries per pass"
	echo "(60% A, 20% AAAA, 10% SRV, 10% NXDOMAIN)."
	echo
	echo "| path | server | qps | × regiondns | mean ms at max | p50 / p99 ms at ½ max | lost % | server CPU % | qps per CPU-s | CPU $SERVER_CPU / $CLIENT_CPU busy % |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	local s ref path
	for s in $SERVERS; do
		case $s in
		regiondns-deleg | coredns-fwd) path=delegated ref=regiondns-deleg ;;
		*) path=zone ref=regiondns ;;
		esac
		row "$s" "$path" "$ref"
	done
	echo
	echo "- qps: median of the rounds at full speed; × regiondns: this server's qps over regiondns's on the"
	echo "  same path, same run. mean ms: dnsperf's average latency in those runs (mostly queueing: up to"
	echo "  \`-q\` queries wait at the server). p50/p99: medians of the rounds at half the median qps (\`-Q\`), each"
	echo "  from every response's latency (\`dnsperf -v\`). lost: median share of queries unanswered within 1 s."
	echo "- server CPU %: user+system time of the server's processes over the run, in % of one CPU"
	echo "  (Consul DNS: both agents, names of dc2 go through dc1's agent to dc2). Below 100 while qps is"
	echo "  flat means the server was not the bottleneck (dnsperf or a neighbour on the CPU was)."
	echo "  qps per CPU-s divides the two (per round, then the median): the fairer number on a shared machine (and a conservative one"
	echo "  for a server that was not saturated: a busy server batches more per wake-up)."
	echo "- CPU busy %: everything that ran on the server's and on dnsperf's CPU during the runs (medians; approximate,"
	echo "  from /proc/stat in a VM: short runs on a contended host can read above 100),"
	echo "  neighbours included. Server's CPU busy well above server CPU %: other work took the server's"
	echo "  CPU; dnsperf's CPU near 100 with the server below 100: the load generator was the limit."
	echo "- Consul DNS and the delegated path answer the equivalent Consul names"
	echo "  (\`master.<c>.service.dc1.consul\`, \`replica.<c>.service.dc1.consul\`,"
	echo "  \`standby-leader.<c>.service.dc2.consul\`, \`replica.<c>.service.dc2.consul\`, \`nx<k>-<c>.service.dc1.consul\`)."
	echo
	per_round "Per round (qps, rounds left to right):" 3 "$WORK/max.tsv"
	per_round "Per round at half load (p99 ms, rounds left to right):" 6 "$WORK/half.tsv"
	machine
	local gob=$OUT/go-bench.txt
	if [[ -n $(find "$gob" -mmin -120 2>/dev/null) ]]; then
		echo
		echo "## Go benchmarks"
		echo
		echo '```'
		grep -E '^(Benchmark|goos|goarch|cpu|pkg)' "$gob"
		echo '```'
	fi
}

# per_round TITLE COLUMN FILE: a block with each server's values of COLUMN in
# FILE, one per round.
per_round() {
	local s
	echo "$1"
	echo
	echo '```'
	for s in $SERVERS; do
		printf '%-16s %s\n' "$s" "$(awk -v n="$s" -v col="$2" '$1 == n { printf "%s%s", sep, $col; sep = " " }' "$3")"
	done
	echo '```'
	echo
}

# row NAME PATH REF: one line of the table.
row() {
	local s=$1 qps ref_qps mean lost cpu half p50 p99 ratio per
	qps=$(median_of "$s" 3 "$WORK/max.tsv")
	ref_qps=$(median_of "$3" 3 "$WORK/max.tsv")
	mean=$(median_of "$s" 4 "$WORK/max.tsv")
	lost=$(median_of "$s" 5 "$WORK/max.tsv")
	cpu=$(median_of "$s" 6 "$WORK/max.tsv")
	p50=$(median_of "$s" 5 "$WORK/half.tsv")
	p99=$(median_of "$s" 6 "$WORK/half.tsv")
	ratio=$(awk -v a="$qps" -v b="$ref_qps" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else print "-" }')
	per=$(median_of "$s" 9 "$WORK/max.tsv")
	printf '| %s | %s | %.0f | %s | %.3f | %s / %s | %.2f | %.0f | %.0f | %.0f / %.0f |\n' "$2" "${LABEL[$s]}" "$qps" "$ratio" "$mean" \
		"${p50:--}" "${p99:--}" "$lost" "$cpu" "$per" "$(median_of "$s" 7 "$WORK/max.tsv")" "$(median_of "$s" 8 "$WORK/max.tsv")"
}

machine() {
	echo "## Machine"
	echo
	echo "- $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r), $(go version | awk '{ print $3 }')"
	echo "- $("$REGIONDNS_BIN" version | awk '{ print $1, $2 }') ($REGIONDNS_FROM),"\
		"NSD $(nsd -v 2>&1 | sed -n 's/^NSD version //p'), dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p'),"\
		"CoreDNS $("$COREDNS" -version | sed -n 's/^CoreDNS-//p'), Consul $("$BIN/consul" version | sed -n 's/^Consul //p' | head -1)"
	echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares both CPUs)"
}
