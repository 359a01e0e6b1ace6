# regiondns — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
CACHE := $(CURDIR)/.cache
CONSUL := $(CACHE)/bin/consul
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test unit e2e lint fuzz demo consul clean bench

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/regiondns ./cmd/regiondns

# Consul v1.14.11, built from the Go module proxy as a Go tool of the e2e
# module and cached under .cache (git-ignored); the first build takes minutes.
consul: $(CONSUL)
$(CONSUL): e2e/go.mod e2e/go.sum
	@mkdir -p $(dir $@)
	cd e2e && $(GO) build -o $@ github.com/hashicorp/consul
	@touch $@

lint:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# Short fuzz runs of every fuzz target, on top of their committed corpora.
# A count, not a duration: with a -fuzztime duration, Go's fuzzing
# coordinator can fail a target with a bare "context deadline exceeded" when
# the time runs out while a worker is busy (golang/go#75804); a count has no
# deadline to race.
FUZZTIME ?= 100000x
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./zones
	$(GO) test -run='^$$' -fuzz='^FuzzHandle$$' -fuzztime=$(FUZZTIME) ./resolver
	$(GO) test -run='^$$' -fuzz='^FuzzSanitize$$' -fuzztime=$(FUZZTIME) ./resolver
	$(GO) test -run='^$$' -fuzz='^FuzzFastPath$$' -fuzztime=$(FUZZTIME) ./resolver
	$(GO) test -run='^$$' -fuzz='^FuzzRedactor$$' -fuzztime=$(FUZZTIME) ./watch

e2e: $(CONSUL)
	cd e2e && REGIONDNS_CONSUL_BIN=$(CONSUL) $(GO) test -race -count=1 -timeout 20m .

test: lint unit fuzz e2e e2e-patroni

# The end-to-end tests with real Patroni, PostgreSQL and PgBouncer in two
# regions (e2e/patroni): installs the Debian packages they run (idempotent),
# then runs them as root, twice: PgBouncer with dns_zone_check_period = 1
# (figures in .cache/e2e-patroni/results.txt), then without the zone check
# (results-no-zone-check.txt).
.PHONY: e2e-patroni
e2e-patroni: $(CONSUL)
	./scripts/install-patroni-deps.sh
	cd e2e && REGIONDNS_E2E_PATRONI=1 REGIONDNS_CONSUL_BIN=$(CONSUL) \
		REGIONDNS_PATRONI_RESULTS=$(CACHE)/e2e-patroni/results.txt \
		$(GO) test -race -count=1 -timeout 20m -v -run '^TestPatroni' ./patroni/
	cd e2e && REGIONDNS_E2E_PATRONI=1 REGIONDNS_CONSUL_BIN=$(CONSUL) REGIONDNS_PATRONI_ZONE_CHECK=0 \
		REGIONDNS_PATRONI_RESULTS=$(CACHE)/e2e-patroni/results-no-zone-check.txt \
		$(GO) test -race -count=1 -timeout 20m -v -run '^TestPatroni' ./patroni/

demo: $(CONSUL)
	./scripts/demo.sh

# The Go benchmarks, then the dnsperf load run of bench/bench.sh against NSD,
# CoreDNS and Consul DNS (installs dnsperf, nsd and dig, builds CoreDNS once;
# ROUNDS, DURATION, CLUSTERS, CLIENTS, OUTSTANDING from the environment).
# See bench/README.md. Not part of make test.
.PHONY: bench
bench: $(CONSUL)
	@mkdir -p $(CACHE)/bench
	set -o pipefail; $(GO) test -run='^$$' -bench=. -benchmem ./cache ./resolver ./forward ./policy | tee $(CACHE)/bench/go-bench.txt
	./bench/bench.sh

# Convergence and scale against real Consul: 1 and 1,000 clusters in two
# regions; reports p50/p99 from a leader change to the new answer, snapshot
# rebuild time, resident memory and the request rate on Consul. Not part of
# make test. A binary without -race, so the figures are the product's.
.PHONY: bench-convergence
bench-convergence: $(CONSUL)
	@mkdir -p $(CACHE)/bench
	$(GO) build -o $(CACHE)/bin/regiondns-bench ./cmd/regiondns
	set -o pipefail; cd e2e && REGIONDNS_BIN=$(CACHE)/bin/regiondns-bench REGIONDNS_CONSUL_BIN=$(CONSUL) \
		$(GO) test -run='^$$' -bench='^BenchmarkConvergence$$' -benchtime=200x -timeout 20m . \
		| tee $(CACHE)/bench/convergence.txt

clean:
	rm -rf bin
