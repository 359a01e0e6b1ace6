# shellcheck shell=bash
# The load: query files, dnsperf runs and their parsing, medians and the
# table. Sourced by bench.sh after lib.sh and servers.sh.

# write_query_files: $WORK/zone.queries (names of the regiondns zone, for
# regiondns, NSD and CoreDNS file) and $WORK/consul.queries (the equivalent
# Consul names, for Consul DNS and the delegated path), line by line the same
# shape. Per cluster, out of 100 queries:
#   60 A     rw 25, ro 25, passive-rw 5, passive-ro 5
#   20 AAAA  rw 10, ro 10 (what glibc asks next to A; NODATA here, the
#            endpoints are IPv4)
#   10 SRV   rw 4, ro 4, passive-rw 1, passive-ro 1
#   10 A     of names that do not exist (NXDOMAIN), 10 different ones
# shuffled with a fixed seed so that every run sends the same sequence.
write_query_files() {
	local i c k
	for ((i = 1; i <= CLUSTERS; i++)); do
		c=$(cluster "$i")
		# zone name | Consul name
		local -A eq=(
			[rw]="master.$c.service.dc1.consul."
			[ro]="replica.$c.service.dc1.consul."
			[passive-rw]="standby-leader.$c.service.dc2.consul."
			[passive-ro]="replica.$c.service.dc2.consul."
		)
		repeat 25 "rw.$c.$ZONE A|${eq[rw]} A"
		repeat 25 "ro.$c.$ZONE A|${eq[ro]} A"
		repeat 5 "passive-rw.$c.$ZONE A|${eq[passive-rw]} A"
		repeat 5 "passive-ro.$c.$ZONE A|${eq[passive-ro]} A"
		repeat 10 "rw.$c.$ZONE AAAA|${eq[rw]} AAAA"
		repeat 10 "ro.$c.$ZONE AAAA|${eq[ro]} AAAA"
		repeat 4 "rw.$c.$ZONE SRV|${eq[rw]} SRV"
		repeat 4 "ro.$c.$ZONE SRV|${eq[ro]} SRV"
		repeat 1 "passive-rw.$c.$ZONE SRV|${eq[passive-rw]} SRV"
		repeat 1 "passive-ro.$c.$ZONE SRV|${eq[passive-ro]} SRV"
		for ((k = 1; k <= 10; k++)); do
			echo "nx$k.$c.$ZONE A|nx$k-$c.service.dc1.consul. A"
		done
	done | shuf --random-source=<(yes) >"$WORK/queries.pairs"
	cut -d'|' -f1 "$WORK/queries.pairs" >"$WORK/zone.queries"
	cut -d'|' -f2 "$WORK/queries.pairs" >"$WORK/consul.queries"
	log "query files: $(wc -l <"$WORK/zone.queries") lines each ($WORK/zone.queries, $WORK/consul.queries)"
}

repeat() {
	local n
	for ((n = 0; n < $1; n++)); do echo "$2"; done
}

# check_same_answers PORT...: every distinct query of zone.queries gets the
# same rcode and the same answer records (order aside) from every server.
check_same_answers() {
	local port ref="" out bad=0
	for port in "$@"; do
		out=$WORK/answers.$port
		sort -u "$WORK/zone.queries" | while read -r name type; do
			dig @127.0.0.1 -p "$port" +norecurse +time=2 +tries=2 +noall +answer +comments "$name" "$type" |
				awk -v q="$name $type" '/status:/ { sub(/,.*/, "", $6); print q, "rcode", $6 } /^[^;]/ && NF { print q, $0 }' |
				sort
		done >"$out"
		if [[ -z $ref ]]; then
			ref=$out
		elif ! diff -q "$ref" "$out" >/dev/null; then
			log "answers on port $port differ from regiondns's:"
			diff "$ref" "$out" | head -20 >&2
			bad=1
		fi
	done
	((bad == 0)) || die "the servers do not serve the same records (set BENCH_ALLOW_MISMATCH=1 to go on anyway)"
}

# dnsperf_run OUT PORT FILE SECONDS [EXTRA...]: dnsperf pinned to CLIENT_CPU,
# bounded in time whatever happens, its report in OUT.
dnsperf_run() {
	local out=$1 port=$2 file=$3 secs=$4 rc=0
	shift 4
	# --foreground: dnsperf stays in the shell's process group, so Ctrl-C
	# reaches it and the run ends at once.
	taskset -c "$CLIENT_CPU" timeout --foreground -k 5 $((secs + 30)) dnsperf -s 127.0.0.1 -p "$port" -d "$file" \
		-l "$secs" -c "$CLIENTS" -q "$OUTSTANDING" -t 1 "$@" >"$out" 2>&1 || rc=$?
	# dnsperf ends normally on Ctrl-C, and then bash does not run the INT
	# trap (it takes the signal as handled by the child): stop here instead.
	if grep -q 'Testing complete (interruption)' "$out"; then
		log "interrupted"
		exit 130
	fi
	return "$rc"
}

# measure NAME PORT FILE ROUND: one run at full speed after a warm-up pass over
# the query file; appends "name round qps mean_ms lost_pct cpu_pct
# server_cpu_busy_pct client_cpu_busy_pct qps_per_cpu_s" to $WORK/max.tsv
# (the busy ones: everything that ran on those CPUs, neighbours included). CPU is that of the server's processes (for Consul DNS both
# agents: names of dc2 are answered through dc1's agent).
measure() {
	local name=$1 port=$2 file=$3 round=$4 out=$WORK/out/$1.max.$4 t0 t1 c0 c1 s0 s1 d0 d1
	mkdir -p "$WORK/out"
	alive "${SERVER_PROC[$name]%% *}"
	dnsperf_run "$out" "$port" "$file" 5 -n 1 || true
	c0=$(server_ticks "$name")
	s0=$(cpu_busy "$SERVER_CPU")
	d0=$(cpu_busy "$CLIENT_CPU")
	t0=$(date +%s%N)
	dnsperf_run "$out" "$port" "$file" "$DURATION" || die "dnsperf against $name failed; see $out"
	t1=$(date +%s%N)
	c1=$(server_ticks "$name")
	s1=$(cpu_busy "$SERVER_CPU")
	d1=$(cpu_busy "$CLIENT_CPU")
	awk -v name="$name" -v round="$round" -v cpu="$(cpu_pct "$c0" "$c1" "$t0" "$t1")" \
		-v scpu="$(cpu_pct "$s0" "$s1" "$t0" "$t1")" -v dcpu="$(cpu_pct "$d0" "$d1" "$t0" "$t1")" '
		/Queries per second:/ { qps = $4 }
		/Queries lost:/ { lost = $4; gsub(/[()%]/, "", lost) }
		/Average Latency \(s\):/ { mean = $4 * 1000 }
		END { printf "%s %s %.0f %.3f %s %s %s %s %.0f\n", name, round, qps, mean, lost, cpu, scpu, dcpu, (cpu > 0 ? qps * 100 / cpu : 0) }' "$out" >>"$WORK/max.tsv"
	tail -1 "$WORK/max.tsv" | awk '{ printf "    %-16s round %s: %7d qps, mean %.3f ms, lost %s%%, server CPU %s%% (CPU %s busy %s%%, CPU %s busy %s%%)\n", $1, $2, $3, $4, $5, $6, sc, $7, dc, $8 }' sc="$SERVER_CPU" dc="$CLIENT_CPU" >&2
}

# measure_latency NAME PORT FILE RATE: one run at RATE queries per second with
# every response's latency written out; appends "name rate qps mean_ms p50_ms
# p99_ms lost_pct" to $WORK/half.tsv.
measure_latency() {
	local name=$1 port=$2 file=$3 rate=$4 out=$WORK/out/$1.half
	alive "${SERVER_PROC[$name]%% *}"
	dnsperf_run "$out" "$port" "$file" 5 -n 1 || true
	dnsperf_run "$out" "$port" "$file" "$DURATION" -Q "$rate" -v || die "dnsperf against $name failed; see $out"
	local qps lost mean
	qps=$(awk '/Queries per second:/ { printf "%.0f", $4 }' "$out")
	lost=$(awk '/Queries lost:/ { l = $4; gsub(/[()%]/, "", l); print l }' "$out")
	mean=$(awk '/Average Latency \(s\):/ { printf "%.3f", $4 * 1000 }' "$out")
	awk '$1 == ">" { print $NF * 1000 }' "$out" | sort -g | awk -v name="$name" -v rate="$rate" -v qps="$qps" \
		-v mean="$mean" -v lost="$lost" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { printf "%s %s %s %s - - %s\n", name, rate, qps, mean, lost; exit }
			printf "%s %s %s %s %.3f %.3f %s\n", name, rate, qps, mean, v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], lost
		}' >>"$WORK/half.tsv"
	tail -1 "$WORK/half.tsv" | awk '{ printf "    %-18s at %s qps: p50 %s ms, p99 %s ms, lost %s%%\n", $1, $2, $5, $6, $7 }' >&2
	# The per-query lines are large; keep the summary only.
	grep -v '^> ' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
}

# SERVER_PROC[name]: the process names (keys of PID) whose CPU counts.
declare -A SERVER_PROC=(
	[regiondns]="regiondns"
	[nsd]="nsd"
	[coredns-file]="coredns-file"
	[consul-dns]="consul-dc1 consul-dc2"
	[regiondns-deleg]="regiondns"
	[coredns-fwd]="coredns-forward"
)

server_ticks() {
	local p total=0
	for p in ${SERVER_PROC[$1]}; do total=$((total + $(cpu_ticks "${PID[$p]}"))); done
	echo "$total"
}

# cpu_pct TICKS0 TICKS1 NS0 NS1: CPU use in percent of one CPU.
cpu_pct() {
	awk -v c="$(($2 - $1))" -v hz="$(getconf CLK_TCK)" -v ns="$(($4 - $3))" 'BEGIN { printf "%.0f", 100 * c / hz / (ns / 1e9) }'
}

# median_of NAME COLUMN FILE: the median of a column over NAME's rounds.
median_of() {
	awk -v n="$1" -v col="$2" '$1 == n { print $col }' "$3" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
