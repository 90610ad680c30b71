# The commands a user runs. `make dev` and `make test` install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install installed host-tools dev dev-lambda dev-cluster test test-unit chaos audit bench package assets lint fmt clean

# One install at a time: `make dev` and `make test` started together would both run pip and
# npm over the same folders (and fail with "Text file busy"); the second waits, then finds
# everything installed.
install:
	@mkdir -p build
	@if command -v flock >/dev/null; then flock build/install.lock $(MAKE) --no-print-directory installed; \
	else $(MAKE) --no-print-directory installed; fi

installed: $(PY_STAMP) $(NODE_STAMP)

# Reinstalled only when the dependency pins change, so later runs work offline.
$(PY_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "holiday needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev]'
	@touch $@

# --ignore-scripts: the Restate server package's only install script is usage analytics.
$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# nginx for the rehearsal of the EC2 host's TLS front (tests/deploy/test_host_rehearsal.py): Debian's
# package unpacked into build/, not installed, so no system service starts. Where apt is missing
# the rehearsal is skipped and says why.
NGINX := build/host-tools/usr/sbin/nginx
host-tools: $(NGINX)
$(NGINX):
	@mkdir -p build/host-tools
	@cd build/host-tools && rm -f nginx_*.deb && \
	  { apt-get download nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get download nginx; }; } && \
	  dpkg -x nginx_*.deb . && rm -f nginx_*.deb || \
	  echo "could not unpack Debian's nginx here: the host rehearsal will use an installed nginx, or be skipped"

dev: install
	$(BIN)/holiday dev

# The same stack with each service as a Lambda function behind a local Lambda runtime.
dev-lambda: install
	$(BIN)/holiday dev --mode lambda

# The same stack on a replicated cluster of three restate-server nodes, configured as on AWS.
dev-cluster: install
	$(BIN)/holiday dev --nodes 3

# Build the four Lambda assets into build/lambda/ and print their sizes and import times.
package: install
	$(BIN)/holiday package
	@touch build/lambda/.built

# The same, only when the code or the pins changed: `cdk synth` and `cdk deploy` run this first.
assets: build/lambda/.built
build/lambda/.built: $(PY_STAMP) pyproject.toml constraints.txt $(shell find holiday -name '*.py')
	$(BIN)/holiday package
	@touch $@

# Every tier: unit, end-to-end (both modes), tools, deploy.
test: install host-tools
	$(BIN)/pytest

# The unit tier alone: no processes, seconds.
test-unit: install
	$(BIN)/pytest tests/unit

# Book trips under load while killing the services, restate-server or DynamoDB; then audit.
chaos: install
	$(BIN)/holiday chaos

# The README's performance table: both modes, one at a time and under load, each beside the null saga.
bench: install
	$(BIN)/holiday bench --concurrency 1,32
	$(BIN)/holiday bench --mode lambda --concurrency 1,8

# Check the local stack's tables (run beside `make dev`).
audit: install
	$(BIN)/holiday audit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# The EC2 host's boot script, as rendered for each TLS mode (a single node, and a cluster's node 2), and
	@# the scripts it installs: the ingress key's copy and the readiness check.
	for tls in self-signed load-balancer; do \
	  for node in "" "--node 2"; do $(BIN)/python -m infra.host $$tls $$node | $(BIN)/shellcheck - || exit 1; done; \
	done
	$(BIN)/shellcheck infra/host/ingress_key.sh infra/host/restate_ready.sh

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) node_modules .holiday build cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
