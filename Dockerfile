# refopt container image: a non-root runtime holding one static-ish binary. The default
# pipeline and rules are compiled into it; the Kubernetes manifests (k8s/) mount the ConfigMap
# versions at /etc/refopt/{rules,pipelines} and point REFOPT_RULES / REFOPT_PIPELINES at them
# (or at a bucket).
#
# Production (default target): build with the Rust toolchain image, run on distroless.
#   docker build -t refopt:0.1.0 .
# Runtime only, with a binary built outside the image (offline machines, CI):
#   cargo build --profile dist --bin refopt
#   buildah bud --target prebuilt --build-arg BINARY=target/dist/refopt -t refopt:0.1.0 .
# Another runtime base (a Debian rootfs from mmdebstrap, a company base image):
#   --build-arg RUNTIME_BASE=localhost/debian-bookworm
# tests/container/run.sh builds the prebuilt target on an mmdebstrap base and runs it as
# uid 65532 the way k8s/ does.

# distroless/cc: glibc and CA certificates (for HTTPS to object stores), no shell, no package
# manager; the `nonroot` tag's user is uid 65532, matching the manifests' securityContext.
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
ARG BUILD_BASE=rust:1.95-bookworm

FROM ${BUILD_BASE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY tests ./tests
COPY rules ./rules
COPY pipelines ./pipelines
RUN cargo build --profile dist --locked --bin refopt

# What every runtime target shares: user, environment, entry point.
FROM ${RUNTIME_BASE} AS runtime
ENV REFOPT_LOG_FORMAT=json \
    TMPDIR=/tmp
# The root filesystem is read-only under k8s/ (only /tmp is a volume); `refopt demo` and
# relative paths land in /tmp.
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/refopt"]
CMD ["--help"]

# A binary built outside the image (path relative to the build context).
FROM runtime AS prebuilt
ARG BINARY=target/dist/refopt
COPY --chmod=0555 ${BINARY} /usr/local/bin/refopt

# The production image (last stage: the default target).
FROM runtime AS production
COPY --from=build --chmod=0555 /src/target/dist/refopt /usr/local/bin/refopt
