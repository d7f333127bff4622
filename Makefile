# townwatch — build, demo, test and benchmark entry points.
# `make demo` and `make test` work on a fresh Debian bookworm machine with Go and gcc.

GO        ?= go
BIN       := bin/townwatch
# The server is built without cgo: it links no C library at all, so its resident memory
# carries none of libavcodec's and OpenCV's shared libraries (about a hundred, 21 MiB of
# RSS recording 16 cameras). Motion detection and scrub thumbnails run in a worker process
# anyway; the server runs bin/townwatch-motion, the same program built with cgo, from its
# own directory (cmd/townwatch/motionprogram.go). A townwatch built with cgo (plain go build)
# is its own worker.
MOTION_BIN := bin/townwatch-motion
# Debian packages the build and the tests need: ffmpeg/ffprobe make and validate test media,
# OpenCV and FFmpeg's libraries are linked by motion detection (cgo), chromium runs the
# browser tests, systemd's systemd-analyze checks configs/townwatch.service, prometheus's
# promtool tests the alerting rules in configs/prometheus, postgresql-15 is the PostgreSQL
# server the catalog tests start (recorder/catalog/pgtest) to run against both backends; the
# ONVIF discovery tests run in a network namespace set up with iproute2's ip, beside Debian's
# wsdd (a WS-Discovery responder that is no camera; its package enables wsdd.service, so
# on a machine run by systemd `systemctl disable --now wsdd` keeps the host unannounced).
DEB_PACKAGES := pkg-config ffmpeg libopencv-dev libavcodec-dev libavutil-dev libswscale-dev chromium systemd prometheus postgresql-15 iproute2 wsdd
SUDO      := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# versitygw, an S3 server in Go, is what the archive tier is tested against; go install
# puts it in GOBIN or GOPATH/bin, which the test targets put on PATH (s3test also looks
# there itself, for a plain go test).
VERSITYGW_VERSION := v1.8.0
GOBIN_DIR := $(shell d=$$($(GO) env GOBIN); [ -n "$$d" ] && echo "$$d" || echo "$$($(GO) env GOPATH | cut -d: -f1)/bin")
export PATH := $(GOBIN_DIR):$(PATH)

# Motion detection links only the OpenCV modules it uses, core and imgproc. gocv's default
# build links every module pkg-config lists for opencv4: 264 shared libraries in all (GDAL,
# GDCM, Qt, ...), 157 more than now, and 36 MiB more file-backed memory in every townwatch
# process (cmd/recbench, 16 cameras). With build tag customenv gocv takes its flags from
# the environment instead. It still compiles wrappers for all of its modules; compiled one
# section per function and linked with --gc-sections, the unused ones are dropped, so
# their symbols need no library. A new gocv call into a module not listed fails the link
# here, naming the missing symbol: add the module (motion/internal/videolink shows how to
# link one for tests only). Exported, so every go command below and those the tests start
# (the binary TestMain builds, go run ./cmd/recbench) use them. Plain `go build` and
# `go test` work too, with gocv's default: a heavier but otherwise identical townwatch
# (README, Development).
OPENCV_LIBS := -lopencv_imgproc -lopencv_core
export GOFLAGS += -tags=customenv
export CGO_CPPFLAGS = $(shell pkg-config --cflags opencv4)
export CGO_CFLAGS = -O2 -g -ffunction-sections -fdata-sections
export CGO_CXXFLAGS = $(CGO_CFLAGS)
export CGO_LDFLAGS = -Wl,--gc-sections -Wl,--as-needed $(OPENCV_LIBS)

# How many test packages run at once. go test's default is the number of CPUs (2 on CI),
# but most of the suite waits on real-time video, timers, browsers and child processes:
# with 2 at a time the CPUs were busy 40 % of the wall time (423 CPU-s in 529 s on 2
# cores), and the longest package (cmd/townwatch) started only after others had finished.
TEST_PACKAGES ?= 4

# go test starts packages in the order its command line names them (./... adds the rest,
# alphabetically, each once). The packages that take longest go first, longest first (their
# times from a make test run), so that none of them starts late behind small ones and ends
# the run alone: in alphabetical order recorder started after 52 s of smaller packages,
# and with only the five longest first, motion and the catalog, archive and cluster
# packages ran for 60 s after them.
TEST_LONGEST_FIRST := ./cmd/townwatch ./viewer ./recorder ./ingest ./viewer/live ./motion \
	./recorder/catalog ./recorder/archive ./recorder/cluster ./ingest/simcam

# Generous ceiling for the whole suite on CI's 2-core machine; a hung test fails instead of
# eating the 90-minute budget.
TEST_TIMEOUT ?= 30m

.PHONY: all deps build demo demo-cluster test vet race-exempt-check bench fuzz clean

all: build

## deps: install the Debian packages that are missing (apt-get, --no-install-recommends)
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi
	$(GO) mod download
	@# The S3 server the archive tier's tests start (recorder/archive/s3test), pinned.
	@[ "$$($(GO) version -m $(GOBIN_DIR)/versitygw 2>/dev/null | awk '$$1 == "mod" {print $$3}')" = "$(VERSITYGW_VERSION)" ] || \
	  { echo "installing versitygw $(VERSITYGW_VERSION) into $(GOBIN_DIR)"; \
	    GOFLAGS= $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); }

## build: build bin/townwatch (the server, without cgo) and bin/townwatch-motion (its motion worker)
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/townwatch
	$(GO) build -o $(MOTION_BIN) ./cmd/townwatch

## demo: run townwatch against two simulated cameras; open http://127.0.0.1:8080/
demo: deps build
	./$(BIN) demo

## demo-cluster: two recorder nodes (townwatch serve -node a / -node b) sharing a PostgreSQL 15
## catalog and a versitygw S3 archive, with four simulated cameras, all on 127.0.0.1 and in
## temporary directories; open http://127.0.0.1:8080/ (node a) or :8081 (node b); Ctrl+C
## stops everything and removes the files
demo-cluster: deps build
	./$(BIN) demo-cluster

## vet: go vet, gofmt, and go.mod/go.sum exactly as `go mod tidy` leaves them (direct
## dependencies listed as direct, no stale sums)
vet:
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum not tidy: run go mod tidy"; exit 1; }
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi

## test: install deps, vet, run every test with the race detector and gocv's Mat counting
## (-tags matprofile: the motion tests fail if any Mat is left open; one run does both, where
## a second run of the motion package used to wait after all the others), then the alerting
## rules' unit tests (promtool)
# The race detector instruments every package it compiles, and the pure-Go SQLite (a
# machine translation of C) runs several times slower under it. Two of its packages are
# compiled without instrumentation (the compiler's -race=false for them only): the
# translated SQLite itself and its memory allocator. recorder/catalog's tests took 34 s of
# CPU with them instrumented, 21 s without. What goes unchecked is memory inside SQLite,
# which townwatch never touches: database/sql (instrumented) hands it copies. All of
# townwatch's code and every other dependency stay instrumented.
#
# Only packages that share no compiled code with others may be exempted. A generic
# instantiation is compiled into every package that uses it and the linker keeps one copy
# for the whole program: modernc.org/libc instantiates sync/atomic.Pointer, and exempted
# too, its uninstrumented copy served every atomic.Pointer in the tests, so the race
# detector lost the ordering of sync.Map and reported races that are none (encoding/json's
# field cache, in every run of the viewer tests). race-exempt-check fails if an exempted
# package defines code outside its own name other than equality functions of array and
# struct types (the worst such a shared one could do is leave a comparison unchecked).
# Exported in GOFLAGS, so the race-enabled townwatch that cmd/townwatch's TestMain builds
# is compiled the same way.
RACE_EXEMPT := modernc.org/sqlite/lib modernc.org/memory
test: GOFLAGS += $(foreach p,$(RACE_EXEMPT),-gcflags=$(p)=-race=false)
test: deps vet race-exempt-check
	$(GO) test -race -p $(TEST_PACKAGES) -tags customenv,matprofile -count=1 -timeout $(TEST_TIMEOUT) $(TEST_LONGEST_FIRST) ./...
	promtool test rules configs/prometheus/townwatch-rules.test.yml

## race-exempt-check: the packages make test compiles without race instrumentation share no
## code with other packages (see RACE_EXEMPT)
race-exempt-check:
	@for p in $(RACE_EXEMPT); do \
	  f=$$($(GO) list -race -export -f '{{.Export}}' $$p) || exit 1; \
	  shared=$$($(GO) tool nm "$$f" | awk -v own="$$p." '{ i = index($$0, " T "); if (!i) next; name = substr($$0, i + 3); \
	    if (index(name, own) != 1 && index(name, "type:.eq.") != 1) print name }'); \
	  if [ -n "$$shared" ]; then \
	    echo "$$p defines code other packages may share; it cannot be compiled without race instrumentation (RACE_EXEMPT in the Makefile):"; \
	    echo "$$shared" | head -5; exit 1; \
	  fi; \
	done

## bench: run the benchmarks (figures are reported, never asserted): the Go benchmarks, then the
## recording benchmark (cmd/recbench: 1, 4 and 16 simulated 1080p cameras recorded by townwatch
## serve for 60 s each, about 5 minutes; its ffmpeg clip is cached in ~/.cache/townwatch-bench).
## RECBENCH_FLAGS passes flags to it, e.g. RECBENCH_FLAGS='-n 16 -duration 120s'; with
## RECBENCH_FLAGS='-n 16 -mediamtx PATH' a MediaMTX binary records the same cameras in the same
## window and the report adds its CPU and peak RSS and the ratios (the footprint issue's
## side-by-side run; MediaMTX is not installed by make deps). Then the
## live-view benchmark (cmd/livebench: one 1080p camera to 1, 10 and 50 WebRTC viewers;
## LIVEBENCH_FLAGS passes flags to it; with LIVEBENCH_FLAGS='-mediamtx PATH' the real
## townwatch serve and MediaMTX each serve 16 viewers of the same camera in the same window,
## and it prints both servers' CPU and peak RSS and the ratios instead). Last the officers' load on a recording townwatch
## (cmd/recbench -playload: 16 cameras recorded, 10 min alone, then 10 min with 4 headless
## Chromium pages each playing 4 of them, then an export job of 1 h of footage: 20 min of
## windows plus start-up and the export, so about 25 minutes; on a loaded host the pages
## alone took 8 min to start; the first time a minute more to encode the archive's segment).
## PLAYLOAD_FLAGS passes flags to it, e.g. PLAYLOAD_FLAGS='-duration 2m' for a 7-minute look
## (the issue's check is 10 min).
RECBENCH_FLAGS ?=
LIVEBENCH_FLAGS ?=
PLAYLOAD_FLAGS ?=
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...
	$(GO) run ./cmd/recbench $(RECBENCH_FLAGS)
	$(GO) run ./cmd/livebench $(LIVEBENCH_FLAGS)
	$(GO) run ./cmd/recbench -playload $(PLAYLOAD_FLAGS)

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
