# syntax=docker/dockerfile:1
#
# The demo service (examples/demo.rs) with live traffic, for the compose
# stack (docker-compose.yml):
#   docker build -t serverwatch-demo .
#   docker run -p 3000:3000 serverwatch-demo
# MONGODB_URI and OTEL_EXPORTER_OTLP_ENDPOINT turn on MongoDB and the OTLP
# push, as with `cargo run --example demo`.

# --- build --------------------------------------------------------------
FROM rust:1.95-slim-trixie AS build
WORKDIR /src
# Only what the build reads (.dockerignore keeps the rest out of the
# context): the manifest, the lock file, the library, its built-in
# dashboard (compiled in) and the example.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY dashboard dashboard
COPY examples examples
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
# The registry and target caches survive between builds (BuildKit); the
# binary is copied out of the cache mount so that the next stage sees it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --example demo \
    && cp target/release/examples/demo /usr/local/bin/serverwatch-demo

# --- run ----------------------------------------------------------------
# Debian slim: the same glibc as the build stage, and bash for the health
# check (a request over /dev/tcp, no curl needed).
FROM debian:13.3-slim
COPY --from=build /usr/local/bin/serverwatch-demo /usr/local/bin/serverwatch-demo
USER 65532:65532
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["serverwatch-demo"]
CMD ["--listen", "0.0.0.0:3000", "--traffic"]
