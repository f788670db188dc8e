# Countersign: the two set-up commands are `make run` and `make test`.
.PHONY: run test bench deps build lint fmt unit integration systemd-check clean fuzz deny passkey-rs-authenticator

CARGO ?= cargo
VAR ?= var

deps:
	@bash scripts/install-deps.sh

## make run: build, create a SoftHSM token under ./var (once) and run countersignd in the foreground.
run: deps
	$(CARGO) build --release --workspace
	@bash scripts/dev-token.sh $(VAR) countersign-dev
	@bash scripts/dev-plugins.sh $(VAR) target/release
	@bash scripts/next-steps.sh $(VAR)
	SOFTHSM2_CONF=$(CURDIR)/$(VAR)/hsm/softhsm2.conf exec ./target/release/countersignd --no-system-config --config firmware-config/dev.toml

## make test: install what is missing, check formatting and lints, run every test; with a
## private PostgreSQL server (scripts/test-postgres.sh, in a temporary directory, stopped at the
## end even when a test fails) named by COUNTERSIGN_TEST_PG, on which the store's unit tests run
## too and the cluster tests put their nodes. Then the validation, challenge, signing and audit
## suites again with their daemons on PostgreSQL (COUNTERSIGN_TEST_BACKEND=postgres; --workspace,
## as the first pass, so the test binary is not built again with other features).
PG_SUITES = token_validation:: challenges:: failure_counting:: token_lifecycle:: audit_chain:: \
	signing_verifies_with_openssl:: hsm_operations:: concurrency:: crash_recovery:: webauthn:: \
	console_browser:: console_system:: powerauth:: powerauth_activation:: powerauth_tokens:: push::
# Tests that fail on PostgreSQL for a known product bug, skipped in that pass only (they still
# run on SQLite): `--skip module::test ...`, with the bug named here. None at present.
PG_SKIP =
test: deps lint build passkey-rs-authenticator systemd-check
	@set -e; pg=$$(mktemp -d /tmp/cs-test-pg-XXXXXX); \
	trap 'bash scripts/test-postgres.sh stop "$$pg"; rm -rf "$$pg"' EXIT; trap 'exit 130' INT TERM; \
	COUNTERSIGN_TEST_PG=$$(bash scripts/test-postgres.sh start "$$pg"); export COUNTERSIGN_TEST_PG; \
	echo "COUNTERSIGN_TEST_PG=\"$$COUNTERSIGN_TEST_PG\""; \
	echo "$(CARGO) test --workspace --all-targets"; \
	$(CARGO) test --workspace --all-targets; \
	echo "COUNTERSIGN_TEST_BACKEND=postgres $(CARGO) test --workspace --test integration -- $(PG_SUITES) $(PG_SKIP)"; \
	COUNTERSIGN_TEST_BACKEND=postgres $(CARGO) test --workspace --test integration -- $(PG_SUITES) $(PG_SKIP)

build:
	$(CARGO) build --workspace

## The passkey-rs authenticator the WebAuthn tests drive (tests/tools/passkey-rs-authenticator: its
## own workspace, Cargo.lock and target directory, Rust 1.87; see docs/testing.md). A debug build:
## about half the time of a release build on 2 cores, and as fast for the few ceremonies the
## tests ask of it. --target-dir keeps it where the tests look, whatever CARGO_TARGET_DIR says.
PASSKEY_RS = tests/tools/passkey-rs-authenticator
passkey-rs-authenticator:
	$(CARGO) build --locked --manifest-path $(PASSKEY_RS)/Cargo.toml --target-dir $(PASSKEY_RS)/target

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) run -q -p countersign-tidy
	$(CARGO) fmt --manifest-path $(PASSKEY_RS)/Cargo.toml -- --check
	$(CARGO) clippy --locked --manifest-path $(PASSKEY_RS)/Cargo.toml --target-dir $(PASSKEY_RS)/target --all-targets -- -D warnings

systemd-check:
	@bash systemd/check-security.sh

## make bench: signing over api.sock vs raw C_Sign, /v1/validate/check with valid HOTP codes and
## the timing of rejects, WebAuthn sign-ins, PowerAuth signature verifications on api.sock, what
## the table seals cost, an idle `make run` daemon's memory, and the appliance on a local
## PostgreSQL server (durable settings, pg_stat_statements; a private server in a temporary
## directory, stopped at the end); writes target/bench/signing.md, validate.md, webauthn.md,
## powerauth.md, seals.md, memory.md and postgres.md (copy the figures to docs/benchmarks.md).
bench: deps
	$(CARGO) build --release --workspace
	./target/release/bench-signing --out target/bench/signing.md
	./target/release/bench-validate --out target/bench/validate.md
	./target/release/bench-webauthn --out target/bench/webauthn.md
	./target/release/bench-powerauth --out target/bench/powerauth.md
	./target/release/bench-seals --out target/bench/seals.md
	bash scripts/bench-memory.sh target/release target/bench/memory.md
	@set -e; pg=$$(mktemp -d /tmp/cs-bench-pg-XXXXXX); \
	trap 'bash scripts/test-postgres.sh stop "$$pg"; rm -rf "$$pg"' EXIT; trap 'exit 130' INT TERM; \
	server=$$(PG_PROFILE=bench bash scripts/test-postgres.sh start "$$pg"); \
	./target/release/bench-postgres --server "$$server" --out target/bench/postgres.md

## make fuzz: every fuzz target in fuzz/ for FUZZ_SECONDS seconds each (default 60), one at a
## time in one process; fails if any target finds a crash (kept under fuzz/artifacts/<target>/).
## Installs cargo-fuzz if it is missing; not part of `make test`. See docs/testing.md.
FUZZ_SECONDS ?= 60
fuzz:
	@bash scripts/install-deps.sh --fuzz
	@bash scripts/fuzz.sh $(FUZZ_SECONDS)

## make deny: licences, banned crates and sources of every dependency (cargo-deny, installed
## from crates.io if missing; not part of `make test`, see docs/testing.md), the passkey-rs
## authenticator's own Cargo.lock included.
deny:
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny
	$(CARGO) deny --offline check licenses bans sources
	$(CARGO) deny --offline --manifest-path ./$(PASSKEY_RS)/Cargo.toml check --config deny.toml licenses bans sources

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path $(PASSKEY_RS)/Cargo.toml

clean:
	$(CARGO) clean
