# Thin aliases: the scripts are the source of truth.
.PHONY: test lint build demo bench

test:
	./scripts/test.sh

# gofmt, go vet and staticcheck only (no services, no tests).
lint:
	NOTIFYD_STAGES=gofmt,vet,staticcheck ./scripts/test.sh

build:
	go build -o bin/ ./cmd/...

demo:
	./scripts/demo.sh

bench:
	./scripts/bench.sh
