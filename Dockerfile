# upmedic's container image: one static binary in an otherwise empty image.
#
#   docker build -t upmedic --build-arg VERSION="$(git describe --always)" .
#   buildah bud --format docker -t upmedic --build-arg VERSION="$(git describe --always)" .
#   podman build --format docker -t upmedic --build-arg VERSION="$(git describe --always)" .
#   docker run --rm -e UPMEDIC_UPSTREAM=unix:/run/app/app.sock \
#       -v app-sock:/run/app upmedic
#
# buildah and podman build OCI images unless told --format docker, and the
# OCI image format has no HEALTHCHECK: they drop it below with only a warning.
#
# The end-to-end suite (e2e/image_test.go) replays the build stage's RUN
# lines to build the binary it tests, and builds the final stage as it is
# written here with buildah: keep the build stage to go build plus files
# written under /out/, and the final stage copying only /out/rootfs/.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (CGO_ENABLED=0: no libc in the final image), no build paths in the
# binary (-trimpath), no symbol table or DWARF (-s -w), the version that
# `upmedic version` prints, and the final stage's ENV (main.imageEnv), so
# that `upmedic env` can tell the values the image set from those given with
# -e: keep it equal to the ENV below (the e2e suite checks).
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.imageEnv=UPMEDIC_LISTEN=0.0.0.0:8080,UPMEDIC_ADMIN_LISTEN=0.0.0.0:9901" -o /out/rootfs/upmedic ./cmd/upmedic
# A name for the non-root user the image runs as, for ps and for tools that
# look the uid up. upmedic itself needs no home and no shell.
RUN mkdir -p /out/rootfs/etc \
 && echo 'upmedic:x:65532:65532:upmedic:/nonexistent:/sbin/nologin' > /out/rootfs/etc/passwd \
 && echo 'upmedic:x:65532:' > /out/rootfs/etc/group

FROM scratch AS final
COPY --from=build /out/rootfs/ /
USER 65532:65532
# In a container, nginx (another container, or the node's ingress) reaches
# upmedic over the pod or compose network, not over loopback: listen on all
# interfaces. The admin API too, for the orchestrator's probes (/readyz,
# /healthz) and Prometheus (/metrics); publish only 8080 if the admin API
# must stay private, or set UPMEDIC_ADMIN_LISTEN=127.0.0.1:9901 when the
# HEALTHCHECK below is the only client. `upmedic check` reads the same
# variable to find the admin API: 0.0.0.0 there means this container.
ENV UPMEDIC_LISTEN=0.0.0.0:8080 \
    UPMEDIC_ADMIN_LISTEN=0.0.0.0:9901
EXPOSE 8080 9901
# `upmedic check` asks GET /readyz: healthy while the app answers upmedic's
# probes and the circuit breaker is closed. No curl or shell needed.
HEALTHCHECK --interval=10s --timeout=6s --start-period=10s --retries=3 CMD ["/upmedic", "check"]
ENTRYPOINT ["/upmedic"]
