# The two commands of the README: `make setup` (fresh machine → ready) and `make test` (the whole suite).
.PHONY: setup test lint quickstart
setup:
	bash scripts/setup.sh
test:
	bash scripts/test.sh
lint:
	python3 -m ruff check domainlm tests benchmarks scripts
quickstart:
	domainlm quickstart
