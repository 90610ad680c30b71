# The commands a user runs. `make dev` and `make test` install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install installed host-tools dev dev-lambda dev-cluster test test-unit test-e2e test-tools test-deploy chaos audit bench package assets lint fmt clean

# One install at a time: `make dev` and `make test` started together would both run pip and
# npm over the same folders (and fail with "Text file busy"); the second waits, then finds
# everything installed.
install:
	@mkdir -p build
	@if command -v flock >/dev/null; then flock build/install.lock $(MAKE) --no-print-directory installed; \
	else $(MAKE) --no-print-directory installed; fi

installed: $(PY_STAMP) $(NODE_STAMP)

# The Python packages are the versions uv.lock pins, each checked against the lock's hashes; the
# lock covers Linux and macOS alike. After editing the pins in pyproject.toml, run `.venv/bin/uv lock`
# (--locked below refuses a lock that no longer matches pyproject.toml). uv itself is bootstrapped
# with pip into build/, at the version the dev extra pins; the project is installed editable.
# Reinstalled only when the pins change, so later runs work offline.
UV_VERSION := $(shell sed -n 's/^ *"uv==\([^"]*\)".*/\1/p' pyproject.toml)
UV := build/uv-$(UV_VERSION)/bin/uv
$(PY_STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "holiday needs Python 3.11 or newer")'
	@test -x $(UV) || { $(PYTHON) -m venv build/uv-$(UV_VERSION) && \
	  build/uv-$(UV_VERSION)/bin/pip install --quiet --only-binary=:all: uv==$(UV_VERSION); }
	$(UV) sync --locked --all-extras --python $(PYTHON) --no-python-downloads
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
build/lambda/.built: $(PY_STAMP) pyproject.toml uv.lock $(shell find holiday -name '*.py')
	$(BIN)/holiday package
	@touch $@

# The tests run on three pytest-xdist workers: these machines have two cores, and a test mostly waits on its servers.
# --dist loadgroup keeps the tests of one stack on one worker, so each stack starts once: see
# xdist_group in tests/conftest.py. `make test PYTEST_WORKERS=0` runs them in this one process.
PYTEST_WORKERS ?= 3
PYTEST_PARALLEL = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)

# Every tier: unit, end-to-end (both modes), tools, deploy.
test: install host-tools
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The unit tier alone: no processes (a unit test that starts one fails), seconds.
test-unit: install
	$(BIN)/pytest tests/unit

# The saga end to end on real local stacks, in both modes, and on a local cluster.
test-e2e: install
	$(BIN)/pytest $(PYTEST_PARALLEL) tests/e2e

# The laptop tools (holiday dev, bench, chaos, the CLI) and the local stand-ins.
test-tools: install host-tools
	$(BIN)/pytest $(PYTEST_PARALLEL) tests/tools

# CDK synthesis (on stand-in assets), the real Lambda packaging, registration, the EC2 host's boot.
test-deploy: install host-tools
	$(BIN)/pytest $(PYTEST_PARALLEL) tests/deploy

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
	  for node in "" "--node 2"; do $(BIN)/python -m holiday_host $$tls $$node | $(BIN)/shellcheck - || exit 1; done; \
	done
	$(BIN)/shellcheck holiday_host/ingress_key.sh holiday_host/restate_ready.sh

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) node_modules .holiday build cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
