# Polly backend. The two commands that matter: `make run` and `make test`.
SHELL := bash
.DEFAULT_GOAL := help

MOTO_PORT ?= 5000
API_PORT ?= 9000
TEST_MOTO_PORT ?= 5001
RETELL_API_KEY ?= local-test-key
STACK_NAME ?= polly
PYTHON ?= python3

VENV := .venv
VENV_LINT := .venv-lint
VENV_CHECKOV := .venv-checkov

.PHONY: help setup run test trace trace-docs faults test-unit lint audit fmt validate sweep digest ropa redrive build bench verify-ledger deploy deploy-function clean agent

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# Project-local virtualenvs, pinned by the lock files; rebuilt when a lock file changes.
$(VENV)/.stamp: requirements/dev.lock.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements/dev.lock.txt
	touch $@

$(VENV_LINT)/.stamp: requirements/lint.lock.txt
	$(PYTHON) -m venv $(VENV_LINT)
	$(VENV_LINT)/bin/pip install -q --disable-pip-version-check -r requirements/lint.lock.txt
	touch $@

$(VENV_CHECKOV)/.stamp: requirements/checkov.lock.txt
	$(PYTHON) -m venv $(VENV_CHECKOV)
	$(VENV_CHECKOV)/bin/pip install -q --disable-pip-version-check -r requirements/checkov.lock.txt
	touch $@

# The browser tests' Playwright and axe-core, pinned by tests/browser/package-lock.json;
# no browser download: the tests drive Debian's Chromium (/usr/bin/chromium, .ci/run).
BROWSER_DEPS := tests/browser/node_modules/.stamp
$(BROWSER_DEPS): tests/browser/package.json tests/browser/package-lock.json
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.stamp $(VENV_LINT)/.stamp $(VENV_CHECKOV)/.stamp $(BROWSER_DEPS) ## Install the pinned local tools

run: $(VENV)/.stamp ## Run the whole system locally (emulated AWS, functions); Ctrl-C stops it
	MOTO_PORT=$(MOTO_PORT) API_PORT=$(API_PORT) RETELL_API_KEY=$(RETELL_API_KEY) scripts/run-local.sh

# The local staff key (testing/testing, the local staff session at the local gateway),
# whatever AWS credentials the shell holds. In AWS: polly-admin --api-url <ApiUrl> with
# your own credentials.
.PHONY: admin
admin: ## polly-admin against `make run`'s stack, signed with the local staff key: make admin ARGS="list"
	@cargo build --locked -q -p polly-admin
	@env -u AWS_SESSION_TOKEN -u AWS_PROFILE AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	  AWS_REGION=eu-central-1 POLLY_API_URL=http://127.0.0.1:$(API_PORT) ./target/debug/polly-admin $(ARGS)

# The test output is kept for `make trace`, which then checks that every requirement has a
# passing test; the table is printed even when a test failed.
TRACE_OUTPUT := target/trace/test-output.txt
test: $(VENV)/.stamp $(BROWSER_DEPS) ## Unit and integration tests (starts and stops its own emulator), then make trace
	@mkdir -p $(dir $(TRACE_OUTPUT))
	@set -o pipefail; status=0; \
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh cargo test --locked --workspace --all-targets --no-fail-fast 2>&1 | tee $(TRACE_OUTPUT) || status=$$?; \
	$(MAKE) --no-print-directory trace TRACE_FLAGS=--require-results || { [ $$status -ne 0 ] || status=1; }; \
	exit $$status

trace: ## Requirement id -> the tests that prove it -> their last result; fails on an id without a test
	@cargo run --locked -q -p polly-trace -- --results $(TRACE_OUTPUT) $(TRACE_FLAGS)

trace-docs: ## Regenerate TRACEABILITY.md and the README's requirement table from the tests' doc comments
	@cargo run --locked -q -p polly-trace -- --write > /dev/null

faults: $(VENV)/.stamp ## The whole fault matrix: every request of every flow failed once with every fault kind
	POLLY_FAULTS=all MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh cargo test --locked -p polly-tests --test it -- faults:: --nocapture

test-unit: ## Tests that need no emulator: unit tests, use cases and handlers on fakes, the layering check
	env -u AWS_ENDPOINT_URL cargo test --locked --workspace --exclude polly-tests --all-targets
	env -u AWS_ENDPOINT_URL cargo test --locked -p polly-tests --lib --bins

# cargo-deny (deny.toml) and cargo-machete are installed, pinned, by .ci/run. `cargo deny`
# checks licences, banned and duplicate crates and sources here; the advisories check needs
# the RustSec advisory database from the network, so it runs in its own target.
# `cargo machete --with-metadata` reads crate names from cargo (polly-shared's library is
# `shared`); clippy --locked has already checked that Cargo.lock needs no update.
lint: ## Format check, clippy with warnings as errors, cargo deny (no advisories), cargo machete
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo deny --locked check bans licenses sources
	cargo machete --with-metadata

audit: ## cargo deny's advisories check (fetches the RustSec advisory database)
	cargo deny --locked check advisories

fmt: ## Format the code
	cargo fmt --all

validate: $(VENV_LINT)/.stamp $(VENV_CHECKOV)/.stamp ## cfn-lint, sam validate --lint and checkov on the template
	$(VENV_LINT)/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV_LINT)/bin/sam validate --lint --template infra/template.yaml --region eu-central-1
	BC_SKIP_MAPPING=TRUE $(VENV_CHECKOV)/bin/checkov --config-file infra/checkov.yaml --quiet --compact

FUNCTION_PACKAGES := -p signup -p telephony -p retention-sweep -p dsar

NOW ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
comma := ,
DRY_RUN ?=
# The Lambda Invoke API of `make run`'s functions (cargo lambda watch or local-functions),
# next to the API port; the local gateway on API_PORT does not offer it (API Gateway
# does not either).
WATCH_PORT ?= $(shell echo $$(( $(API_PORT) + 1 )))
INVOKE = curl -fsS -X POST http://127.0.0.1:$(WATCH_PORT)/2015-03-31/functions/$(1)/invocations -d '$(2)' && echo
sweep: ## With `make run` up: run the retention sweep, e.g. make sweep NOW=2030-01-01T00:00:00Z DRY_RUN=1
	@$(call INVOKE,retention-sweep,{"dry_run": $(if $(DRY_RUN),true,false)$(comma) "now": "$(NOW)"})

digest: ## With `make run` up: send the privacy team's daily digest now (read it in the emulator's SES)
	@$(call INVOKE,dsar-digest,{})

ropa: ## Print the Art. 30 record of processing activities (from the processing registry)
	@cargo run --locked -q -p polly-shared --bin ropa

# The agent's configuration as code (infra/agent, R7.4): checked against the provider's
# limits and the backend's compliance checks, then the LLM and the agent are created or
# updated (found by id or by name; a second run changes nothing). The webhook URL is
# POLLY_WEBHOOK_URL (the stack's ApiUrl + /v1/telephony/retell); the key comes from
# RETELL_API_KEY or PROVIDER_API_KEY_SECRET_ARN, never from the command line. AGENT_ARGS:
# --dry-run, --publish, --check, --agent-id …, --llm-id …, --base-url … (`--help`).
AGENT_ARGS ?=
agent: ## Check infra/agent and publish it: make agent POLLY_WEBHOOK_URL=https://…/v1/telephony/retell AGENT_ARGS="--dry-run"
	@cargo run --locked -q -p polly-agent -- $(AGENT_ARGS)

# The stack's outputs name the table, the key table and both dead-letter queues; set
# REDRIVE_TABLE, REDRIVE_KEY_TABLE and REDRIVE_QUEUES (space-separated URLs) to skip the lookup.
STACK_OUTPUT = $$($(VENV)/bin/aws cloudformation describe-stacks --region eu-central-1 --stack-name $(STACK_NAME) \
  --query "Stacks[0].Outputs[?OutputKey=='$(1)'].OutputValue" --output text)
redrive: $(VENV)/.stamp ## Replay the workers' dead letters (deployed stack STACK_NAME; needs AWS credentials)
	@set -euo pipefail; \
	table="$${REDRIVE_TABLE:-$(call STACK_OUTPUT,TableName)}"; \
	key_table="$${REDRIVE_KEY_TABLE:-$(call STACK_OUTPUT,KeyTableName)}"; \
	queues="$${REDRIVE_QUEUES:-$(call STACK_OUTPUT,DsarDeadLetterQueueUrl) $(call STACK_OUTPUT,TelephonyDeadLetterQueueUrl)}"; \
	args=(); for q in $$queues; do args+=(--queue-url "$$q"); done; \
	AWS_REGION=eu-central-1 cargo run --locked -q -p polly-shared --bin redrive -- --table "$$table" --key-table "$$key_table" "$${args[@]}"

# The consent ledger's check (R7.6): the chain, every signed head (verified locally with the
# signing key's public key), and with SUBJECT=<lead id> or PHONE=<number> that person's
# consents. Deployed stack STACK_NAME; LEDGER_TABLE, LEDGER_KEY and BLIND_INDEX_KEY skip
# the lookup (local stack: LEDGER_TABLE=polly-local-table LEDGER_KEY=<key id> with
# AWS_ENDPOINT_URL=http://127.0.0.1:$(MOTO_PORT)).
SUBJECT ?=
PHONE ?=
verify-ledger: $(VENV)/.stamp ## Verify the consent ledger's chain and signatures; SUBJECT=<lead id> or PHONE=<number> for one person
	@set -euo pipefail; \
	table="$${LEDGER_TABLE:-$(call STACK_OUTPUT,TableName)}"; \
	key="$${LEDGER_KEY:-$(call STACK_OUTPUT,LedgerKeyArn)}"; \
	args=(--table "$$table" --key-id "$$key"); \
	if [ -n "$(SUBJECT)" ]; then args+=(--subject "$(SUBJECT)"); fi; \
	if [ -n "$(PHONE)" ]; then args+=(--phone "$(PHONE)" --blind-index-key-id "$${BLIND_INDEX_KEY:-$(call STACK_OUTPUT,BlindIndexKeyArn)}"); fi; \
	AWS_REGION=eu-central-1 cargo run --locked -q -p polly-shared --bin verify-ledger -- "$${args[@]}"

build: $(VENV)/.stamp ## Release build of every function for Lambda (arm64)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --locked --release --arm64 $(FUNCTION_PACKAGES)

bench: $(VENV)/.stamp ## Benchmarks: sizes, init, sign-up latency, webhook CPU, recording copy memory, sweep cost, ledger verification, analytics export
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --locked --release --arm64 $(FUNCTION_PACKAGES)
	cargo build --locked --release -p signup -p polly-tests --bin signup --bin bench-signup --bin bench-webhook --bin bench-recording --bin bench-sweep --bin bench-export --bin bench-ledger --bin bench-analytics
	@ls -l target/lambda/*/bootstrap | awk '{printf "arm64 %-40s %6.2f MiB\n", $$9, $$5/1048576}'
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh ./target/release/bench-signup \
	  --arm64-binary target/lambda/signup/bootstrap --binary target/release/signup
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh ./target/release/bench-webhook
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh ./target/release/bench-recording
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh ./target/release/bench-sweep
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh ./target/release/bench-export
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh ./target/release/bench-ledger
	MOTO_PORT=$(TEST_MOTO_PORT) scripts/with-moto.sh ./target/release/bench-analytics

deploy: $(VENV)/.stamp $(VENV_LINT)/.stamp ## sam build + sam deploy to eu-central-1 (needs AWS credentials)
	cd infra && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 ../$(VENV_LINT)/bin/sam build --beta-features
	cd infra && SAM_CLI_TELEMETRY=0 ../$(VENV_LINT)/bin/sam deploy --stack-name $(STACK_NAME)

FUNCTION ?= signup
deploy-function: $(VENV)/.stamp ## Update one function's code in a deployed stack: make deploy-function FUNCTION=signup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --locked --release --arm64 --bin $(FUNCTION)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda deploy --region eu-central-1 \
	  --binary-name $(FUNCTION) $(STACK_NAME)-$(FUNCTION)

clean: ## Remove build output and local state (keeps the virtualenvs)
	cargo clean --locked
	rm -rf .local infra/.aws-sam
