# syntax=docker/dockerfile:1
# One small non-root image with every ChatBoard binary: api-server, gateway, worker, operator and
# the single-node chatboard. The Helm chart runs each Deployment with `command: [<binary>]`; the
# default command is the single node on SQLite in /data.
#
#   docker build -t chatboard:dev .
#   docker run --rm -p 8080:8080 -v chatboard-data:/data chatboard:dev

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The dist profile (Cargo.toml) is release without symbols. Cache mounts keep
# the registry and the target directory between builds; the binaries are copied out in the same
# step because the target cache is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked \
        --bin api-server --bin gateway --bin worker --bin operator --bin chatboard \
    && mkdir -p /out/bin /out/data \
    && cp target/dist/api-server target/dist/gateway target/dist/worker \
          target/dist/operator target/dist/chatboard /out/bin/

# distroless/cc: glibc, libgcc, CA certificates and tzdata, no shell; "nonroot" is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# The single node's data directory, owned by the runtime user so a fresh volume is writable.
COPY --from=build --chown=65532:65532 /out/data /data
ENV CHATBOARD_ADDR=0.0.0.0:8080 \
    CHATBOARD_DATA_DIR=/data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
CMD ["chatboard"]
