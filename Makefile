# sealpost: `make test` installs what the tests need (Debian, as root) and
# runs every test. `make run` starts the dev gateway.
GO ?= go

.PHONY: test deps check unit fuzz build run bench bench-smime clean deb image

test: deps check
	SEALPOST_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 20m ./...

deps:
	./scripts/install-test-deps.sh

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

# Unit and in-process tests only (no external programs needed).
unit:
	$(GO) test -count=1 ./internal/...

# Run each fuzzer for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run XXX -fuzz FuzzDataReader -fuzztime $(FUZZTIME) ./internal/smtpd/
	$(GO) test -run XXX -fuzz FuzzHeaderCapture -fuzztime $(FUZZTIME) ./internal/pipeline/
	$(GO) test -run XXX -fuzz FuzzParseContentType -fuzztime $(FUZZTIME) ./internal/mime/
	$(GO) test -run XXX -fuzz FuzzReadHeader -fuzztime $(FUZZTIME) ./internal/mime/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run XXX -fuzz FuzzSMTPSession -fuzztime $(FUZZTIME) ./internal/smtpd/
	$(GO) test -run XXX -fuzz FuzzDSN -fuzztime $(FUZZTIME) ./internal/dsn/
	$(GO) test -run XXX -fuzz FuzzBodyHasher -fuzztime $(FUZZTIME) ./internal/mailauth/dkim/
	$(GO) test -run XXX -fuzz FuzzSealOpen -fuzztime $(FUZZTIME) ./internal/seal/
	$(GO) test -run XXX -fuzz FuzzRelaxedBody -fuzztime $(FUZZTIME) ./internal/mailauth/
	$(GO) test -run XXX -fuzz FuzzParseRecord -fuzztime $(FUZZTIME) ./internal/tlsrpt/
	$(GO) test -run XXX -fuzz FuzzEncrypt -fuzztime $(FUZZTIME) ./internal/pgp/
	$(GO) test -run XXX -fuzz FuzzDecrypt -fuzztime $(FUZZTIME) ./internal/pgp/
	$(GO) test -run XXX -fuzz FuzzWrapWithPreamble -fuzztime $(FUZZTIME) ./internal/encrypt/
	$(GO) test -run XXX -fuzz FuzzCarried -fuzztime $(FUZZTIME) ./internal/keyring/
	$(GO) test -run XXX -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/keyring/
	$(GO) test -run XXX -fuzz FuzzARCVerify -fuzztime $(FUZZTIME) ./internal/mailauth/arc/
	$(GO) test -run XXX -fuzz FuzzScanMessage -fuzztime $(FUZZTIME) ./internal/dlp/
	$(GO) test -run XXX -fuzz FuzzText -fuzztime $(FUZZTIME) ./internal/dlp/
	$(GO) test -run XXX -fuzz FuzzPDF -fuzztime $(FUZZTIME) ./internal/dlp/
	$(GO) test -run XXX -fuzz FuzzDecide -fuzztime $(FUZZTIME) ./internal/policy/
	$(GO) test -run XXX -fuzz FuzzDescribe -fuzztime $(FUZZTIME) ./internal/portal/
	$(GO) test -run XXX -fuzz FuzzVerifyBundle -fuzztime $(FUZZTIME) ./internal/audit/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/mailauth/dmarc/
	$(GO) test -run XXX -fuzz FuzzRef -fuzztime $(FUZZTIME) ./internal/blob/
	$(GO) test -run XXX -fuzz FuzzCheck -fuzztime $(FUZZTIME) ./internal/attach/
	$(GO) test -run XXX -fuzz FuzzParseScan -fuzztime $(FUZZTIME) ./internal/clamd/
	$(GO) test -run XXX -fuzz FuzzCheck -fuzztime $(FUZZTIME) ./internal/impersonation/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/rua/
	$(GO) test -run XXX -fuzz FuzzDecrypt -fuzztime $(FUZZTIME) ./internal/cms/
	$(GO) test -run XXX -fuzz FuzzDecryptMessage -fuzztime $(FUZZTIME) ./internal/smime/
	$(GO) test -run XXX -fuzz FuzzParseCertificates -fuzztime $(FUZZTIME) ./internal/smime/
	$(GO) test -run XXX -fuzz FuzzDomainList -fuzztime $(FUZZTIME) ./internal/tlspolicy/
	$(GO) test -run XXX -fuzz FuzzSPFVerify -fuzztime $(FUZZTIME) ./internal/mailauth/spf/
	$(GO) test -run XXX -fuzz FuzzDKIMVerify -fuzztime $(FUZZTIME) ./internal/mailauth/dkim/
	$(GO) test -run XXX -fuzz FuzzEvaluate -fuzztime $(FUZZTIME) ./internal/inbound/
	$(GO) test -run XXX -fuzz FuzzStream -fuzztime $(FUZZTIME) ./internal/inbound/

build:
	$(GO) build -o sealpost ./cmd/sealpost

run:
	$(GO) run ./cmd/sealpost serve --dev

bench:
	./bench/relay.sh

# S/MIME encryption throughput beside openssl cms -encrypt (1 MB, 100 MB).
bench-smime:
	$(GO) test -run XXX -bench BenchmarkEncrypt -benchtime 3x ./internal/cms/

# Debian package from one static binary: dist/sealpost_VERSION_ARCH.deb
# (SEALPOST_VERSION, default 0.1.0). packaging/packaging_test.go installs it.
deb:
	./scripts/build-deb.sh dist

# Container image as an OCI archive, built without a daemon:
# dist/sealpost-oci.tar (podman load -i / docker load -i; README).
image:
	mkdir -p dist
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o dist/sealpost ./cmd/sealpost
	$(GO) run ./tools/mkimage -binary dist/sealpost -o dist/sealpost-oci.tar

clean:
	rm -rf sealpost sealpost-data dist
