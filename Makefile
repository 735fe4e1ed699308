# provision: build, test and demo against the local AWS emulator (moto server, see localstack/README.md).
SHELL := bash

.PHONY: emulator-start emulator-stop build test demo lint deps bench

emulator-start:
	@localstack/start.sh

emulator-stop:
	@localstack/stop.sh

build:
	cargo build

# Each installs what it needs (localstack/need.sh: only what is missing). The emulator is
# stopped on exit (EXIT trap), also when the tests fail; make exits with the tests' status.
test:
	@localstack/need.sh
	@trap 'localstack/stop.sh' EXIT; \
	localstack/start.sh || exit 1; \
	. localstack/env.sh; \
	localstack/.venv/bin/python localstack/test_profiles.py || exit 1; \
	if command -v cargo-nextest >/dev/null 2>&1; then \
		cargo nextest run --no-fail-fast; \
	else \
		cargo test --no-fail-fast -- --test-threads 4; \
	fi

# Writes its kubeconfig under target/ so the user's ~/.kube/config is never touched.
demo:
	@localstack/need.sh
	@set -e; \
	trap 'localstack/stop.sh' EXIT; \
	localstack/start.sh; \
	cargo build; \
	. localstack/env.sh; \
	export KUBECONFIG="$(CURDIR)/target/demo-kubeconfig"; \
	target/debug/provision up -f config/demo.toml; \
	target/debug/provision plan -f config/demo.toml; \
	target/debug/provision down -f config/demo.toml; \
	target/debug/provision up -f config/eks.toml; \
	target/debug/provision plan -f config/eks.toml; \
	target/debug/provision down -f config/eks.toml; \
	target/debug/provision up -f config/full.toml; \
	target/debug/provision down -f config/full.toml

# A rolling replacement of 6 workers against its critical path, API calls and wall time of
# up/down on the emulator, then up under the scaled latency profile against its critical path,
# then crash-resume at 50 moments per kind (a benchmark, not a test;
# see BENCHMARKS.md).
bench:
	cargo test -q --test roll_bench -- --ignored --nocapture
	bench/bench.sh
	bench/latency.sh
	@trap 'localstack/stop.sh' EXIT; localstack/start.sh >/dev/null; . localstack/env.sh; \
	PROVISION_CRASH_POINTS=50 PROVISION_CRASH_SEED=2 cargo test -q --test crash -- --nocapture

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	shellcheck localstack/*.sh bench/*.sh .ci/run

# What `make test` and `make demo` install by themselves, for those who want it separately.
deps:
	localstack/need.sh
