# Every target works from a clean clone. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
NPM ?= npm

.PHONY: install build lint test test-unit test-integration run clean

node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

build: install
	$(NPM) run build

lint: install
	$(NPM) run lint

# Unit and contract tests on the memory engine run in parallel; integration tests spawn
# redis-server and gateway/worker processes, so they run one file at a time.
test-unit: build
	npx jest --selectProjects unit

test-integration: build
	npx jest --selectProjects integration --runInBand

test: build lint test-unit test-integration

run: build
	$(NPM) start

clean:
	rm -rf dist node_modules
