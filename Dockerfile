# pubpresence container image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t pubpresence .
#   docker run -v /path/to/pubpresence.toml:/etc/pubpresence/pubpresence.toml:ro \
#     -e PUBPRESENCE_XMPP_SECRET=... -p 9273:9273 pubpresence
#
# The configuration baked in at /etc/pubpresence/pubpresence.toml is
# config.example.toml: mount your own over it. Its [http] listen defaults to
# 127.0.0.1:9273, which nothing outside the container can reach: for /metrics,
# /healthz and /readyz (scrapes, liveness and readiness probes) the mounted
# file must set
#
#   [http]
#   listen = ":9273"        # or "0.0.0.0:9273"
#
# Pass the component secret in PUBPRESENCE_XMPP_SECRET rather than in the file.

# The build runs on the build machine's platform and cross-compiles for the
# target one (docker buildx build --platform linux/amd64,linux/arm64 …).
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that this layer stays cached while only the source changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pubpresence ./cmd/pubpresence

# distroless/static rather than scratch: same absence of shell and libc, but
# with an /etc/passwd entry for the nonroot user (uid 65532, its home, /tmp),
# CA certificates and time zone data.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pubpresence /usr/local/bin/pubpresence
COPY config.example.toml /etc/pubpresence/pubpresence.toml
# Numeric, not "nonroot": Kubernetes' runAsNonRoot can only verify a numeric user.
USER 65532:65532
EXPOSE 9273
ENTRYPOINT ["/usr/local/bin/pubpresence"]
CMD ["run", "--config", "/etc/pubpresence/pubpresence.toml"]
