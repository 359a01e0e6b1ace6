// Package patroni holds the end-to-end tests of regiondns against the real
// software it was designed for: Patroni 3.0.2 (Debian 12's, with its Consul
// client), PostgreSQL 15 and PgBouncer 1.18, in two WAN-federated Consul
// datacenters, with the real regiondns binary answering PgBouncer (a real
// c-ares DNS client) and the tests. Everything runs on loopback and is started
// and stopped by the tests; `make e2e-patroni` installs the packages
// (scripts/install-patroni-deps.sh) and runs them. Without
// REGIONDNS_E2E_PATRONI=1 (which that target sets) the tests skip, so that
// `make e2e` (go test ./... in the e2e module) does not run them twice.
//
// The environment (see env_test.go):
//
//   - Consul: per datacenter a server, a client agent that regiondns reads
//     (so that a test can stop it while Patroni keeps its DCS), and one client
//     agent per Patroni node, as in production. An agent per node is what the
//     bouncer-per-node layout needs: regiondns picks the PgBouncer registered
//     on the same Consul node as the chosen Patroni member, and Patroni
//     registers its service on the agent it talks to, so members sharing one
//     agent would share one node. Idle agents cost little, less than the
//     PostgreSQL and Patroni processes, so nine of them fit on a two-core
//     machine.
//   - Main region (dc1): a Patroni cluster "acme" of three members, main-1,
//     main-2 and main-3; main-3 carries Patroni's nofailover tag, so that the
//     failover's new leader is known in advance (main-1) while the region
//     keeps a replica after it. Standby region (dc2): a Patroni standby
//     cluster of two members, standby-1 (the standby leader) and standby-2,
//     whose standby_cluster points at main-1's PostgreSQL. main-1 stays up
//     through the switchover (it becomes a replica, from which the standby
//     leader keeps streaming in cascade) and the failover (it becomes the
//     leader again), so a fixed host is enough; an address following the
//     leader would need PostgreSQL's libpq to resolve through regiondns, that
//     is, the machine's resolver pointing at it.
//   - Every member has its own loopback address (127.1.<region>.<n>) and all
//     of them use the same PostgreSQL, REST API and node-PgBouncer ports, as
//     real hosts do; the DNS answers tell the members apart by address, and
//     a pool's PgBouncer can reach whichever member the DNS name answers on
//     the one configured port.
//   - Three zone clusters watch the one Patroni scope "acme", one per layout:
//     "acme" (direct), "acme-node" (bouncer-per-node: a PgBouncer on every
//     Patroni node, registered as "pgbouncer" on the node's agent, its backend
//     the node's own PostgreSQL) and "acme-pool" (pool-fleet: per region an RW
//     and an RO PgBouncer registered on the region's server as
//     acme-pgbouncer-rw and acme-pgbouncer-ro, their backends
//     rw.acme.<zone> and ro.acme.<zone>, resolved through regiondns with
//     PgBouncer's resolv_conf). Pools in both regions point at the active
//     region's names, so that the standby region's RW pool writes to the main
//     leader before a promotion and to the promoted leader after it; the
//     standby application's read-only path to its own standby leader is
//     passive-rw of the direct and bouncer-per-node layouts.
//   - regiondns listens on port 53 of 127.0.0.153: c-ares 1.18 (Debian 12)
//     reads no port from a resolv.conf nameserver line.
//
// The scenarios run in order on the one environment (TestPatroniTwoRegions):
// steady state, switchovers (main-1 to main-2 and back, five by default),
// failover, standby promotion with the main region stopped, split brain,
// and the Consul agents regiondns reads stopped. The switchovers, failover
// and promotion measure how long after the Patroni leader change the new
// leader's member key says primary, and regiondns, plain Consul DNS and
// writes through each layout follow, with every DNS answer seen on the way;
// the figures, and a table of them against the targets, are logged and
// written to results.txt in the run directory and to
// $REGIONDNS_PATRONI_RESULTS when set. Every PgBouncer runs the recipe of
// deploy/pgbouncer/pgbouncer.ini, read from the file, and PgBouncer's
// defaults otherwise (dns_max_ttl 15 s among them), with
// dns_zone_check_period = $REGIONDNS_PATRONI_ZONE_CHECK (1 by default; 0 is
// PgBouncer's default, no zone check). The writers give an attempt up after
// a second, as an application with a statement timeout does: PgBouncer holds
// a client whose server is shutting down until it is back.
//
// TestPatroniReads (reads_test.go) runs on an environment of its own, which
// can run beside the one above: a cluster "sales" of three members
// (127.1.5.<n>) in Patroni's synchronous mode, read by a regiondns with
// ro_max_lag 16MB on a free port. It checks that sync.sales answers
// Patroni's synchronous standby and follows it, that a replica whose WAL
// replay stops while the leader writes past the limit leaves ro.sales and
// comes back, and measures the Consul requests following reads costs.
//
// What real Patroni does that the emulated members of the core e2e tests do
// not show: an old primary that comes back after the standby region's
// promotion is started as a replica and promoted when it takes the leader
// key, so it lands on the same timeline as the promoted region (both branch
// from the last common one), and the split brain is decided by the rule for
// equal timelines (the promoted standby region wins). A switchover inside the
// promoted region then puts it on a higher timeline; for the moment between
// its old leader's demotion and its new leader's promotion the promoted
// region has no leader, but its config (no standby_cluster) says it is still
// a primary cluster, so rw answers nothing rather than the old main region's
// leader: the test asserts that rw never answers main-1 then.
package patroni
