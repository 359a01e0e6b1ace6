#!/usr/bin/env bash
# Runs regiondns against a local two-datacenter Consul federation with one
# demo cluster per layout, registered the way Patroni 3.x registers itself:
#
#   orders   direct            dc1: orders-1 leader, orders-2 replica
#                              dc2: orders-3 standby leader, orders-4 replica
#   billing  bouncer-per-node  dc1: billing-1 leader, billing-2 replica
#                              dc2: billing-3 standby leader, billing-4 replica
#                              (each on its own Consul node, with a pgbouncer)
#   ledger   pool-fleet        dc1: ledger-1 leader, ledger-2 replica,
#                                   pools ledger-pgbouncer-rw/-ro
#                              dc2: ledger-3 standby leader, ledger-4
#                                   replica, pools
#
# Consul: dc1 HTTP 127.0.0.1:18500 DNS :18600, dc2 HTTP :28500 DNS :28600.
# regiondns: DNS 127.0.0.1:8053 (DEMO_DNS_ADDR), HTTP 127.0.0.1:8080
# (DEMO_HTTP_ADDR). Ctrl-C stops everything. Needs go, curl and dig.
set -euo pipefail
# shellcheck source=scripts/demo-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/demo-lib.sh"

if ! command -v curl >/dev/null || ! command -v dig >/dev/null; then
	log "installing curl and dig"
	sudo=""
	((EUID == 0)) || sudo=sudo
	$sudo apt-get update -qq && $sudo apt-get install -y -qq curl dnsutils >/dev/null
fi

mkdir -p "$BIN"
if [[ ! -x $BIN/consul ]]; then
	log "building consul into $BIN (a few minutes, once)"
	(cd "$ROOT/e2e" && go build -o ../.cache/bin/consul github.com/hashicorp/consul)
fi
log "building regiondns into $BIN"
(cd "$ROOT" && go build -o .cache/bin/regiondns ./cmd/regiondns)

rm -rf "$DEMO"
mkdir -p "$DEMO/state"
PIDS=()
cleanup() {
	trap - INT TERM EXIT
	log "stopping"
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for dc in dc1 dc2; do
	other=dc2
	[[ $dc == dc2 ]] && other=dc1
	mkdir -p "$DEMO/$dc"
	cat >"$DEMO/$dc.hcl" <<EOF
datacenter       = "$dc"
node_name        = "$dc-server"
data_dir         = "$DEMO/$dc/data"
server           = true
bootstrap_expect = 1
bind_addr        = "127.0.0.1"
client_addr      = "127.0.0.1"
ports {
  http = ${HTTP_PORT[$dc]}
  dns = ${DNS_PORT[$dc]}
  server = ${SERVER_PORT[$dc]}
  serf_lan = ${LAN_PORT[$dc]}
  serf_wan = ${WAN_PORT[$dc]}
  grpc = -1
  grpc_tls = -1
  https = -1
}
retry_join_wan        = ["127.0.0.1:${WAN_PORT[$other]}"]
retry_interval_wan    = "1s"
performance { raft_multiplier = 1 }
check_update_interval = "0s"
disable_update_check  = true
log_level             = "warn"
connect { enabled = false }
ui_config { enabled = true }
EOF
	log "starting consul $dc (log $DEMO/$dc.log)"
	"$BIN/consul" agent -config-file "$DEMO/$dc.hcl" >"$DEMO/$dc.log" 2>&1 &
	PIDS+=($!)
done

wait_federated 30 "$DEMO/%s.log"

# A stand-in for Patroni's HTTP checks: pass every TTL check listed in
# $DEMO/state every 5 s (TTL 30 s). demo-failover.sh removes a leader's entry.
(
	while sleep 5; do
		for f in "$DEMO"/state/dc*_service:*; do
			[[ -e $f ]] || continue
			read -r dc check <"$f" || continue
			curl -sf -X PUT "$(consul_url "$dc")/v1/agent/check/pass/$check?note=demo" >/dev/null || true
		done
	done
) &
PIDS+=($!)

log "registering the demo clusters"
member_on_agent dc1 orders orders-1 127.0.0.11 master 1
member_on_agent dc1 orders orders-2 127.0.0.12 replica 1
member_on_agent dc2 orders orders-3 127.0.0.13 standby_leader 1
member_on_agent dc2 orders orders-4 127.0.0.14 replica 1
member_on_node dc1 billing billing-1 127.0.0.21 master 1
member_on_node dc1 billing billing-2 127.0.0.22 replica 1
member_on_node dc2 billing billing-3 127.0.0.23 standby_leader 1
member_on_node dc2 billing billing-4 127.0.0.24 replica 1
member_on_agent dc1 ledger ledger-1 127.0.0.31 master 1
member_on_agent dc1 ledger ledger-2 127.0.0.32 replica 1
member_on_agent dc2 ledger ledger-3 127.0.0.33 standby_leader 1
member_on_agent dc2 ledger ledger-4 127.0.0.34 replica 1
pool_instance dc1 ledger-pgbouncer-rw pool-rw-1 127.0.0.41
pool_instance dc1 ledger-pgbouncer-rw pool-rw-2 127.0.0.42
pool_instance dc1 ledger-pgbouncer-ro pool-ro-1 127.0.0.43
pool_instance dc2 ledger-pgbouncer-rw pool-rw-3 127.0.0.51
pool_instance dc2 ledger-pgbouncer-ro pool-ro-2 127.0.0.53

cat >"$DEMO/zone.yml" <<EOF
zone: $ZONE
ttl: {rw: 1, ro: 1, passive: 1, negative: 1}
regions:
  - {name: main, role: main, datacenter: dc1, consul_http: ["$(consul_url dc1)"], consul_dns: ["127.0.0.1:${DNS_PORT[dc1]}"]}
  - {name: standby, role: standby, datacenter: dc2, consul_http: ["$(consul_url dc2)"], consul_dns: ["127.0.0.1:${DNS_PORT[dc2]}"]}
clusters:
  - {label: orders, scopes: {main: orders, standby: orders}, layout: direct}
  - {label: billing, scopes: {main: billing, standby: billing}, layout: bouncer-per-node, pgbouncer: {service: pgbouncer}}
  - {label: ledger, scopes: {main: ledger, standby: ledger}, layout: pool-fleet, pgbouncer: {rw_service: ledger-pgbouncer-rw, ro_service: ledger-pgbouncer-ro}}
EOF

export REGIONDNS_CONFIG=$DEMO/zone.yml REGIONDNS_DNS_ADDR=$DNS_ADDR REGIONDNS_HTTP_ADDR=$HTTP_ADDR
"$BIN/regiondns" check-config
log "starting regiondns on $DNS_ADDR (log $DEMO/regiondns.log)"
"$BIN/regiondns" >"$DEMO/regiondns.log" 2>&1 &
PIDS+=($!)
ready() { curl -sf "http://$HTTP_ADDR/readyz"; }
wait_until 30 "regiondns /readyz (see $DEMO/regiondns.log)" ready

dig_cmd="dig @${DNS_ADDR%:*} -p ${DNS_ADDR##*:} +norecurse"
cat <<EOF

regiondns is serving $ZONE on $DNS_ADDR. Try:

  $dig_cmd rw.orders.${ZONE%.}
  $dig_cmd ro.orders.${ZONE%.}
  $dig_cmd rw.orders.${ZONE%.} SRV
  $dig_cmd rw.orders.${ZONE%.} TXT +short
  $dig_cmd passive-rw.orders.${ZONE%.}
  $dig_cmd passive-ro.orders.${ZONE%.}
  $dig_cmd rw.billing.${ZONE%.} SRV        # PgBouncer on the leader's node
  $dig_cmd ro.ledger.${ZONE%.} SRV         # the read-only pool
  $dig_cmd orders.service.dc2.consul SRV  # delegated to Consul DNS
  curl -s $HTTP_ADDR/debug/state
  curl -s $HTTP_ADDR/metrics | grep ^regiondns_

Simulate a failover in the main region (orders-1 fails, orders-2 is promoted):
  $ROOT/scripts/demo-failover.sh
Promote the standby region (split brain, the higher timeline wins):
  $ROOT/scripts/demo-failover.sh promote-standby

Consul UI: $(consul_url dc1)/ui   Logs: $DEMO/*.log   Ctrl-C stops everything.
EOF
tail -n +1 -F "$DEMO/regiondns.log" &
PIDS+=($!)
# Until Ctrl-C, or until one of the processes dies (then everything stops).
wait -n "${PIDS[@]}" || true
log "a demo process exited; see $DEMO/*.log"
