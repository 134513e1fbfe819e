# Included by the top-level Makefile: `make corpus` regenerates the labeled crash
# corpus and scores it (bt vs the baselines). Needs gcc, g++, rustc, jq; clang is used
# when installed.
CORPUS_OUT ?= $(abspath $(CARGO_TARGET_DIR))/corpus

.PHONY: corpus corpus-eval
corpus: bt
	@command -v jq >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq)
	@command -v clang >/dev/null 2>&1 || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang) || true
	BT=$(BIN) tests/corpus/gen.sh $(CORPUS_OUT)
	$(BIN) rules eval $(CORPUS_OUT)/corpus.jsonl

# Scores the last generated corpus again (after a rules change, say).
corpus-eval:
	$(BIN) rules eval $(CORPUS_OUT)/corpus.jsonl
