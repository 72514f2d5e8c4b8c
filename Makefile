# One entry point for people and CI. Builds use two jobs: these machines have 2 cores.
CARGO ?= cargo
JOBS ?= 2

.PHONY: deps check test demo bench bench-smoke profiling fmt

# Debian packages the test beds need (containerd, runc, CNI plugins, registry,
# skopeo, umoci, protoc, ...); installs only what is missing.
deps:
	bash tests/bed/install-deps.sh

# Formatting, lints and docs.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j$(JOBS) --workspace --all-targets --all-features -- -D warnings
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc -j$(JOBS) --workspace --no-deps --quiet

# Every suite: unit tests, the proxy against the fake runtime, the test bed, the
# differential suite on a real containerd, and a smoke run of the benchmark.
test: deps check
	JOBS=$(JOBS) bash tests/run-all.sh

# A CloneSet of 3 replicas on a real containerd (through the proxy, the real controller,
# the simulated API server and kubelet), rolled in place from app:v1 to app:v2; each step
# timed, nothing left running. `make demo DEMO_ARGS=--keep` keeps it up for kubectl.
demo: deps
	$(CARGO) build -j$(JOBS) --workspace --bins
	$(CARGO) run -j$(JOBS) -q -p stevedore-tests --bin stevedore-demo -- $(DEMO_ARGS)

# Direct, socat relay, proxy (frame relay), proxy terminating HTTP/2 and typed-handler
# proxy, side by side, then every other benchmark (release build; the scale ones take
# long: `target/release/stevedore-bench --latency` runs the first alone).
bench: deps
	$(CARGO) build -j$(JOBS) --release --workspace --bins
	./target/release/stevedore-bench

# Release code with symbols and line tables, for perf (target/profiling/); the
# release binaries themselves carry no debug info.
profiling:
	$(CARGO) build -j$(JOBS) --profile profiling --workspace --bins

fmt:
	$(CARGO) fmt --all
