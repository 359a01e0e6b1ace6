# shellcheck shell=bash
# Shared by demo.sh and demo-failover.sh: addresses of the demo federation and
# helpers that write into Consul what Patroni 3.x writes (service, tags, check,
# KV keys under service/<scope>/). Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/.cache/bin
DEMO=$ROOT/.cache/demo
DNS_ADDR=${DEMO_DNS_ADDR:-127.0.0.1:8053}
HTTP_ADDR=${DEMO_HTTP_ADDR:-127.0.0.1:8080}
ZONE=pg.example.internal.

# Fixed loopback ports per datacenter: dc1 is region main, dc2 region standby.
declare -A HTTP_PORT=([dc1]=18500 [dc2]=28500)
declare -A DNS_PORT=([dc1]=18600 [dc2]=28600)
declare -A SERVER_PORT=([dc1]=18300 [dc2]=28300)
declare -A LAN_PORT=([dc1]=18301 [dc2]=28301)
declare -A WAN_PORT=([dc1]=18302 [dc2]=28302)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

consul_url() { echo "http://127.0.0.1:${HTTP_PORT[$1]}"; }

# api DC METHOD PATH [BODY]: one Consul HTTP API call, failing loudly.
api() {
	local dc=$1 method=$2 path=$3 body=${4:-}
	curl -sS --fail-with-body -X "$method" ${body:+--data "$body"} "$(consul_url "$dc")$path"
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s.
wait_until() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out waiting for $what"
		sleep 0.2
	done
}

# wait_federated SECONDS LOG_FORMAT: waits, for dc1 and dc2, until the
# datacenter has a Consul leader and sees both datacenters (WAN federation).
# LOG_FORMAT is a printf format naming a datacenter's log, for the message.
wait_federated() {
	local seconds=$1 log_format=$2 dc
	has_leader() { [[ $(curl -sf "$(consul_url "$1")/v1/status/leader") == *:* ]]; }
	federated() {
		local dcs
		dcs=$(curl -sf "$(consul_url "$1")/v1/catalog/datacenters") && [[ $dcs == *'"dc1"'* && $dcs == *'"dc2"'* ]]
	}
	for dc in dc1 dc2; do
		# shellcheck disable=SC2059 # the format is the caller's
		wait_until "$seconds" "a Consul leader in $dc (see $(printf "$log_format" "$dc"))" has_leader "$dc"
		wait_until "$seconds" "WAN federation seen from $dc" federated "$dc"
	done
}

# Patroni's service name: lower case, '.', '_' and ' ' become '-'.
service_name() { local s=${1,,}; s=${s//[._ ]/-}; echo "$s"; }

# Patroni 3.x tags for a member-key role.
role_tags() {
	case $1 in
	master) echo '["master","primary"]' ;;
	replica) echo '["replica"]' ;;
	standby_leader) echo '["standby-leader"]' ;;
	*) die "unknown role $1" ;;
	esac
}

state_file() { echo "$DEMO/state/$1_${2//\//_}"; } # DC ID

# keep_passing DC CHECK_ID: the background loop in demo.sh passes this TTL
# check every 5 s (a stand-in for Patroni's HTTP check on its REST API).
keep_passing() {
	echo "$1 $2" >"$(state_file "$1" "$2")"
	api "$1" PUT "/v1/agent/check/pass/$2?note=demo" >/dev/null
}

# stop_passing DC CHECK_ID: fail the check now and leave it failed.
stop_passing() {
	rm -f "$(state_file "$1" "$2")"
	api "$1" PUT "/v1/agent/check/fail/$2?note=demo+failure" >/dev/null
}

# session DC SCOPE MEMBER: the member's session (created once, no TTL so the
# demo needs no renewal loop; Patroni's has a TTL and renews it).
session() {
	local f
	f=$(state_file "$1" "session:$2/$3")
	if [[ ! -s $f ]]; then
		api "$1" PUT /v1/session/create "{\"Name\":\"$2-$3\",\"Checks\":[],\"LockDelay\":\"0s\",\"Behavior\":\"delete\"}" |
			sed -E 's/.*"ID": *"([^"]+)".*/\1/' >"$f"
	fi
	cat "$f"
}

# put_member_key DC SCOPE MEMBER ADDR ROLE TIMELINE
put_member_key() {
	local dc=$1 scope=$2 member=$3 addr=$4 role=$5 tl=$6
	api "$dc" PUT "/v1/kv/service/$scope/members/$member?acquire=$(session "$dc" "$scope" "$member")" \
		"{\"conn_url\":\"postgres://$addr:5432/postgres\",\"api_url\":\"http://$addr:8008/patroni\",\"state\":\"running\",\"role\":\"$role\",\"version\":\"3.0.2\",\"xlog_location\":$((50331648 + tl * 1048576)),\"timeline\":$tl}" >/dev/null
}

# take_leader_key DC SCOPE MEMBER: service/<scope>/leader names MEMBER.
take_leader_key() {
	api "$1" DELETE "/v1/kv/service/$2/leader" >/dev/null
	api "$1" PUT "/v1/kv/service/$2/leader?acquire=$(session "$1" "$2" "$3")" "$3" >/dev/null
}

# put_cluster_keys DC SCOPE STANDBY(yes|no) TIMELINE
put_cluster_keys() {
	local standby=""
	[[ $3 == yes ]] && standby=',"standby_cluster":{"host":"127.0.0.1","port":5432,"create_replica_methods":["basebackup"]}'
	api "$1" PUT "/v1/kv/service/$2/config" "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10$standby}" >/dev/null
	api "$1" PUT "/v1/kv/service/$2/status" "{\"optime\":$((50331648 + $4 * 1048576))}" >/dev/null
	if (($4 > 1)); then
		api "$1" PUT "/v1/kv/service/$2/history" "[[$(($4 - 1)),50331648,\"no recovery target specified\"]]" >/dev/null
	else
		api "$1" PUT "/v1/kv/service/$2/history" "[]" >/dev/null
	fi
}

# member_on_agent DC SCOPE MEMBER ADDR ROLE TIMELINE: register as Patroni does
# (service on the agent, ID <scope>/<member>, tags by role), with a TTL check.
member_on_agent() {
	local dc=$1 scope=$2 member=$3 addr=$4 role=$5 tl=$6 id="$2/$3"
	api "$dc" PUT /v1/agent/service/register "{\"ID\":\"$id\",\"Name\":\"$(service_name "$scope")\",\"Address\":\"$addr\",\"Port\":5432,\"Tags\":$(role_tags "$role"),\"EnableTagOverride\":true,\"Check\":{\"CheckID\":\"service:$id\",\"TTL\":\"30s\",\"DeregisterCriticalServiceAfter\":\"150.0s\",\"Notes\":\"demo stand-in for GET /${role//_/-} on the Patroni REST API\"}}" >/dev/null
	keep_passing "$dc" "service:$id"
	member_keys "$@"
}

# member_on_node DC SCOPE MEMBER ADDR ROLE TIMELINE: the member on a Consul node
# of its own (<member>-node, catalog API) with its PgBouncer next to it: the
# bouncer-per-node layout. Catalog checks keep their status: no TTL loop.
member_on_node() {
	local dc=$1 scope=$2 member=$3 addr=$4 role=$5 tl=$6 id="$2/$3" node="$3-node"
	api "$dc" PUT /v1/catalog/register "{\"Node\":\"$node\",\"Address\":\"$addr\",\"Service\":{\"ID\":\"$id\",\"Service\":\"$(service_name "$scope")\",\"Address\":\"$addr\",\"Port\":5432,\"Tags\":$(role_tags "$role"),\"EnableTagOverride\":true},\"Checks\":[{\"CheckID\":\"service:$id\",\"Name\":\"Service '$scope' check\",\"Status\":\"passing\",\"ServiceID\":\"$id\"}]}" >/dev/null
	api "$dc" PUT /v1/catalog/register "{\"Node\":\"$node\",\"Address\":\"$addr\",\"Service\":{\"ID\":\"pgbouncer\",\"Service\":\"pgbouncer\",\"Address\":\"$addr\",\"Port\":6432},\"Checks\":[{\"CheckID\":\"service:pgbouncer\",\"Name\":\"PgBouncer\",\"Status\":\"passing\",\"ServiceID\":\"pgbouncer\"}]}" >/dev/null
	member_keys "$@"
}

# pool_instance DC SERVICE ID ADDR: one PgBouncer of a pool fleet, on a node of
# its own.
pool_instance() {
	api "$1" PUT /v1/catalog/register "{\"Node\":\"$3\",\"Address\":\"$4\",\"Service\":{\"ID\":\"$3\",\"Service\":\"$2\",\"Address\":\"$4\",\"Port\":6432},\"Checks\":[{\"CheckID\":\"service:$3\",\"Name\":\"PgBouncer\",\"Status\":\"passing\",\"ServiceID\":\"$3\"}]}" >/dev/null
}

member_keys() {
	local dc=$1 scope=$2 member=$3 addr=$4 role=$5 tl=$6
	put_member_key "$dc" "$scope" "$member" "$addr" "$role" "$tl"
	case $role in
	master) put_cluster_keys "$dc" "$scope" no "$tl" && take_leader_key "$dc" "$scope" "$member" ;;
	standby_leader) put_cluster_keys "$dc" "$scope" yes "$tl" && take_leader_key "$dc" "$scope" "$member" ;;
	esac
}
