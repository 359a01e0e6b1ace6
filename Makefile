# regiondns — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
CACHE := $(CURDIR)/.cache
CONSUL := $(CACHE)/bin/consul
COREDNS_VERSION ?= v1.15.0
COREDNS := $(CACHE)/bin/coredns-$(COREDNS_VERSION)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test unit e2e lint fuzz demo consul coredns clean bench soak

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

# CoreDNS, installed from the Go module proxy into a temporary GOBIN and
# cached under .cache (git-ignored): the e2e test of the CoreDNS forward
# health probe and the benchmarks run it. The first build takes minutes.
coredns: $(COREDNS)
$(COREDNS):
	@mkdir -p $(dir $@)
	gobin=$$(mktemp -d $(CACHE)/gobin.XXXXXX) && \
		{ GOBIN=$$gobin $(GO) install github.com/coredns/coredns@$(COREDNS_VERSION) && mv $$gobin/coredns $@; \
		rc=$$?; rm -rf $$gobin; exit $$rc; }

lint:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# The alert rules of deploy/prometheus: promtool (Debian's prometheus
# package, installed by the script) checks them and runs their unit tests,
# each alert firing and not firing.
.PHONY: rules-test
rules-test:
	./scripts/install-promtool.sh
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

# The status page of a 1,000-cluster fleet in headless Chromium (Debian's,
# installed by the script): its table against /debug/state, its rendering
# time on the server, and screenshots under .cache (docs/status-page.png
# is a copy of status-page.png). Built without -race, so that the time is
# the product's.
.PHONY: browser-test
browser-test:
	./scripts/install-browser-deps.sh
	@mkdir -p $(CACHE)
	REGIONDNS_CHROMIUM=$$(command -v chromium) REGIONDNS_SCREENSHOT=$(CACHE)/status-page.png \
		$(GO) test -count=1 -v -run '^TestStatusPageInBrowser$$' ./cmd/regiondns

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

# The end-to-end tests, then a short soak (SOAK_SHORT) of the one make soak
# runs.
e2e: $(CONSUL) $(COREDNS)
	cd e2e && REGIONDNS_CONSUL_BIN=$(CONSUL) REGIONDNS_COREDNS_BIN=$(COREDNS) $(GO) test -race -count=1 -timeout 20m .
	$(MAKE) soak SOAK_DURATION=$(SOAK_SHORT)

test: lint unit rules-test browser-test fuzz e2e e2e-patroni

# The end-to-end tests with real Patroni, PostgreSQL and PgBouncer in two
# regions (e2e/patroni): installs the Debian packages they run (idempotent),
# then runs them as root, twice: PgBouncer with dns_zone_check_period = 1
# (figures in .cache/e2e-patroni/results.txt), then without the zone check
# (results-no-zone-check.txt). The first run's regiondns is built without
# -race, so that its figures are the product's (Consul DNS, beside it, is no
# race build either); the second run's with -race, so that the same
# scenarios are checked for races.
.PHONY: e2e-patroni
e2e-patroni: $(CONSUL)
	./scripts/install-patroni-deps.sh
	@mkdir -p $(CACHE)/bin
	$(GO) build -o $(CACHE)/bin/regiondns-patroni ./cmd/regiondns
	cd e2e && REGIONDNS_E2E_PATRONI=1 REGIONDNS_CONSUL_BIN=$(CONSUL) \
		REGIONDNS_BIN=$(CACHE)/bin/regiondns-patroni \
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
	COREDNS_VERSION=$(COREDNS_VERSION) ./bench/bench.sh

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

# The soak of e2e/soak_test.go: SOAK_DURATION of well-behaved and hostile
# DNS clients against regiondns on real two-datacenter Consul while Consul
# churns; a row of RSS, goroutines, open descriptors and answer rates every
# 10 s, in the log and in .cache/soak/report-<duration>.txt. regiondns and
# the load generator are built without -race, so that the figures are the
# product's and the load is what it says. Not part of make test (make e2e
# runs a SOAK_SHORT one). SOAK_HOSTILE=false runs the well-behaved clients
# alone.
SOAK_DURATION ?= 10m
SOAK_SHORT ?= 60s
SOAK_TIMEOUT ?= 30m
SOAK_HOSTILE ?= true
soak: $(CONSUL)
	@mkdir -p $(CACHE)/soak $(CACHE)/bin
	$(GO) build -o $(CACHE)/bin/regiondns-soak ./cmd/regiondns
	cd e2e && REGIONDNS_BIN=$(CACHE)/bin/regiondns-soak REGIONDNS_CONSUL_BIN=$(CONSUL) \
		REGIONDNS_SOAK_DURATION=$(SOAK_DURATION) REGIONDNS_SOAK_HOSTILE=$(SOAK_HOSTILE) \
		REGIONDNS_SOAK_REPORT=$(CACHE)/soak/report-$(SOAK_DURATION).txt \
		$(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' .

clean:
	rm -rf bin
