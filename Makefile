# egoengine: every target is a thin call into scripts/, so each script can be
# read and run on its own. `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help deps build run run-1password check test warm test-go test-templates test-nix test-compose e2e bench tools vendor-hash compose-up compose-down push-templates clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: ## install the system packages the tests need (Debian, as root)
	scripts/deps.sh

build: ## build bin/egoagent and its 1Password helper bin/egoagent-op (static, stripped)
	scripts/build.sh

run: build ## the built-in demo: egoagent sync into ./demo-home, then status and metadata (no 1Password account)
	scripts/demo.sh

run-1password: build ## the same demo through the real helper and 1Password SDK, against a local stand-in service (no account)
	scripts/demo.sh --1password

check: ## the quick loop (under a minute warm): gofmt, go vet, staticcheck, shellcheck, go test -short
	scripts/check.sh

test: deps warm test-go test-templates test-nix test-compose e2e ## every test, end to end included (installs missing Debian packages first)
	@echo "make test: all suites passed"

warm: ## start the end-to-end test's slow builds (Coder, Compose, envbuilder, Kubernetes, the stand-in's root filesystem) in the background; the e2e waits for them
	scripts/e2e.sh warm

test-go: ## Go tests, with the real Codex CLI from npm
	scripts/test-go.sh

test-templates: tools ## OpenTofu fmt, validate and tofu test for both Coder templates
	scripts/test-templates.sh

test-nix: ## evaluate the flake offline (pinned Home Manager, stand-in nixpkgs), image config, vendorHash, workflows, shellcheck
	scripts/test-nix.sh

test-compose: ## load compose/compose.yaml with compose-go and check it
	scripts/test-compose.sh

e2e: ## end to end on a real Coder (built once into ~/.cache/egoengine), PostgreSQL and OpenTofu, all on loopback
	scripts/e2e.sh

bench: build ## benchmarks; results go to docs/performance.md
	scripts/bench.sh

tools: ## build OpenTofu and the providers from the Go module proxy into ~/.cache/egoengine
	scripts/tools.sh

vendor-hash: ## recompute nix/egoagent vendorHash after go.mod changes
	scripts/vendor-hash.sh

compose-up: ## start the Coder stack (compose/.env required)
	scripts/compose.sh up

compose-down: ## stop the Coder stack
	scripts/compose.sh down

push-templates: ## push both templates to the Coder server you are logged in to
	scripts/push-templates.sh

clean: ## remove build output and the demo home
	rm -rf bin demo-home
