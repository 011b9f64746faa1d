# syntax=docker/dockerfile:1.7
# check=error=true

# A Go service built the way golang's and distroless' official images suggest:
# cached module downloads, cross-compilation, a static binary on a minimal base.

ARG GO_VERSION=1.22
ARG ALPINE_VERSION=3.19
ARG TARGETOS TARGETARCH

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS base
WORKDIR /src
ENV CGO_ENABLED=0 \
    GOFLAGS="-trimpath -mod=readonly" \
    GOCACHE=/root/.cache/go-build
RUN apk add --no-cache git ca-certificates tzdata \
 && update-ca-certificates

FROM base AS deps
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    --mount=type=bind,source=go.mod,target=go.mod \
    go mod download -x

FROM deps AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build,sharing=locked \
    --mount=type=bind,target=. \
    --mount=type=secret,id=netrc,target=/root/.netrc,required=false \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/server ./cmd/server

FROM deps AS test
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,target=. \
    --network=none \
    go test -race -count=1 ./... 2>&1 | tee /tmp/test.log

FROM scratch AS export
COPY --from=build /out/server /

FROM alpine:${ALPINE_VERSION} AS runtime
LABEL org.opencontainers.image.title="server" \
      org.opencontainers.image.source="https://example.com/server" \
      org.opencontainers.image.licenses=Apache-2.0
RUN <<EOF
set -eux
addgroup -S -g 10001 app
adduser -S -D -H -u 10001 -G app app
mkdir -p /var/lib/server
chown app:app /var/lib/server
EOF
COPY --from=build --chown=10001:10001 --chmod=0755 /out/server /usr/local/bin/server
COPY --link <<-EOT /etc/server/config.yaml
	listen: ":8080"
	data: /var/lib/server
	log_level: ${LOG_LEVEL:-info}
	EOT
ENV LOG_LEVEL=info
EXPOSE 8080/tcp 9090
VOLUME ["/var/lib/server"]
USER app:app
WORKDIR /var/lib/server
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --start-interval=2s --retries=3 \
    CMD ["/usr/local/bin/server", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/server"]
CMD ["serve", "--config", "/etc/server/config.yaml"]
