# The two commands of the README: `make setup` (fresh machine → ready) and `make test` (the whole suite).
.PHONY: setup test test-portable test-fast lint quickstart
setup:
	bash scripts/setup.sh
test:
	bash scripts/test.sh
# The whole suite as an AVX2-only CPU (Hygon's class) runs it: AVX-512/AMX hidden from domainlm and from torch.
test-portable:
	DOMAINLM_CPU_FLAGS_OFF=portable bash scripts/test.sh
# The inner loop: everything but the slow (real model / vLLM / subprocess) and browser tests.
test-fast:
	bash scripts/test.sh -m "not slow and not browser"
lint:
	python3 -m ruff check domainlm tests benchmarks scripts
quickstart:
	domainlm quickstart
