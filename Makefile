# The two commands of the README: `make setup` (fresh machine → ready) and `make test` (the whole suite).
.PHONY: setup test test-fast lint quickstart
setup:
	bash scripts/setup.sh
test:
	bash scripts/test.sh
# The inner loop: everything but the slow (real model / vLLM / subprocess) and browser tests.
test-fast:
	bash scripts/test.sh -m "not slow and not browser"
lint:
	python3 -m ruff check domainlm tests benchmarks scripts
quickstart:
	domainlm quickstart
