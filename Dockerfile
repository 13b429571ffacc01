# refopt container image: build with the Rust toolchain, run on a minimal, non-root base.
#   docker build -t refopt:0.1.0 .
# The default rules and pipelines are baked in under /etc/refopt; the Kubernetes manifests
# (k8s/) mount the ConfigMap versions over them, and --rules / REFOPT_RULES can point at a
# bucket instead.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY tests ./tests
RUN cargo build --release --locked -p refopt-cli \
 && strip target/release/refopt

# distroless/cc: glibc and CA certificates (for HTTPS to object stores), no shell, no package
# manager; the `nonroot` tag runs as uid 65532, matching the manifests' securityContext.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/refopt /usr/local/bin/refopt
COPY rules /etc/refopt/rules
COPY pipelines /etc/refopt/pipelines
ENV REFOPT_RULES=/etc/refopt/rules \
    REFOPT_PIPELINES=/etc/refopt/pipelines \
    REFOPT_LOG_FORMAT=json \
    TMPDIR=/tmp
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/refopt"]
CMD ["--help"]
