# bt — build, install, test, bench, demo. `make demo` and `make test` work on a fresh machine.
PREFIX  ?= /usr/local
TARGET  := x86_64-unknown-linux-gnu
BIN     := target/$(TARGET)/release/bt
APPLETS := ptrace coresnap coroner morgue hydra
# Tools the tests and benchmarks drive (the oracles and peers): command:debian-package.
TOOLS   := gdb:gdb eu-stack:elfutils g++:g++ gcc:gcc tmux:tmux file:file

.PHONY: all bt install deps test bench demo clean FORCE

all: bt

# One statically linked executable (glibc static). --target keeps the static
# flag away from build scripts and proc-macros, which must stay dynamic.
bt:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target $(TARGET)

install: bt
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/bt
	for a in $(APPLETS); do ln -sf bt $(DESTDIR)$(PREFIX)/bin/$$a; done

# Installs what the tests need and the machine lacks (apt-get update once).
deps:
	@missing=""; for t in $(TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test: deps bt
	BT_BIN=$(CURDIR)/$(BIN) cargo test --locked -- --test-threads=2

clean:
	cargo clean
