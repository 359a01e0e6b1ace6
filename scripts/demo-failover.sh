#!/usr/bin/env bash
# Changes the demo federation started by demo.sh the way Patroni would.
#
#   demo-failover.sh [failover]   orders-1 (dc1 leader) fails its check and
#                                 orders-2 is promoted on timeline 2; rw follows
#                                 within a second.
#   demo-failover.sh promote-standby
#                                 the dc2 standby leader orders-3 is promoted
#                                 (standby_cluster removed, timeline 3): with dc1
#                                 still primary this is split brain, and the
#                                 higher timeline wins rw.
set -euo pipefail
# shellcheck source=scripts/demo-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/demo-lib.sh"

[[ -d $DEMO/state ]] || die "no demo running (start scripts/demo.sh first)"

case ${1:-failover} in
failover)
	log "orders-1 (dc1 leader) fails its health check"
	stop_passing dc1 service:orders/orders-1
	log "orders-2 is promoted on timeline 2"
	member_on_agent dc1 orders orders-2 127.0.0.12 master 2
	;;
promote-standby)
	log "the dc2 standby cluster is promoted: orders-3 leads on timeline 3"
	member_on_agent dc2 orders orders-3 127.0.0.13 master 3
	;;
*) die "usage: $0 [failover|promote-standby]" ;;
esac

sleep 2 # the answer TTL (1 s) plus a Consul round trip
q() { dig @"${DNS_ADDR%:*}" -p "${DNS_ADDR##*:}" +norecurse +short "$@" | tr '\n' ' '; }
printf 'rw.orders:         %s\n' "$(q "rw.orders.${ZONE%.}")"
printf 'ro.orders:         %s\n' "$(q "ro.orders.${ZONE%.}")"
printf 'passive-rw.orders: %s\n' "$(q "passive-rw.orders.${ZONE%.}")"
printf 'why:               %s\n' "$(q "rw.orders.${ZONE%.}" TXT)"
