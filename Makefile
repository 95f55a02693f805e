# Every target works from a clean clone. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
NPM ?= npm

.PHONY: install build lint test test-unit test-integration run bench bench-resume-storm soak clean

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
	@mkdir -p .tmp
	npx jest --selectProjects unit --json --outputFile=.tmp/jest-unit.json

test-integration: build
	@mkdir -p .tmp
	npx jest --selectProjects integration --runInBand --json --outputFile=.tmp/jest-integration.json

# One closing line for both runs, in the plain 'N passed, N failed' form CI reads.
test: build lint test-unit test-integration
	@node -e 'const r = ["unit", "integration"].map((p) => require("./.tmp/jest-" + p + ".json")); const sum = (k) => r.reduce((n, x) => n + x[k], 0); console.log(`tests: $${sum("numPassedTests")} passed, $${sum("numFailedTests")} failed, $${sum("numPendingTests")} skipped`)'

run: build
	$(NPM) start

# Benchmarks against real processes on this machine, the project beside its peers in the same
# run (nchan: Debian's nginx + libnginx-mod-nchan, installed here for the bench if missing and
# root; otherwise its figures say n/a). Prints the side-by-side table of README's Performance
# section and writes bench/results/latest.{json,md}. Env: BENCH_* (bench/run.ts).
bench: build
	bash bench/installPeers.sh
	npx tsc -p bench/tsconfig.json
	node dist/bench/run.js

# The resume storm alone (two gateways, one SIGKILLed mid-broadcast): BENCH_STORM_* (bench/resumeStormScenario.ts).
bench-resume-storm: build
	npx tsc -p bench/tsconfig.json
	BENCH_SCENARIOS=resumeStorm node dist/bench/run.js

# Ordinary traffic for SOAK_SECONDS (180) with Redis memory sampled: it must level off once the
# resume windows roll over (closed connections' state goes with them). Env: SOAK_* (bench/soak.ts).
soak: build
	npx tsc -p bench/tsconfig.json
	node dist/bench/soak.js

clean:
	rm -rf dist node_modules
