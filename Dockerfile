# syntax=docker/dockerfile:1
# One small non-root image holding every ChatBoard service. The `chatboard` binary is all of
# them: started as `api-server`, `gateway`, `worker` or `operator` (symlinks here) it is that
# service, under its own name it is the single node. The Helm chart runs each Deployment with
# `command: [<service>]`; the default command is the single node on SQLite in /data.
#
#   docker build -t chatboard:dev .
#   docker run --rm -p 8080:8080 -v chatboard-data:/data chatboard:dev

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The dist profile (Cargo.toml) is release without symbols, with fat LTO. Cache mounts keep the
# registry and the target directory between builds; the binary is copied out in the same step
# because the target cache is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin chatboard \
    && mkdir -p /out/bin /out/data \
    && cp target/dist/chatboard /out/bin/ \
    && for service in api-server gateway worker operator; do ln -s chatboard "/out/bin/$service"; done

# distroless/cc: glibc, libgcc, CA certificates and tzdata, no shell; "nonroot" is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
# Copying the directory keeps the symlinks as symlinks.
COPY --from=build /out/bin/ /usr/local/bin/
# The single node's data directory, owned by the runtime user so a fresh volume is writable.
COPY --from=build --chown=65532:65532 /out/data /data
ENV CHATBOARD_ADDR=0.0.0.0:8080 \
    CHATBOARD_DATA_DIR=/data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
CMD ["chatboard"]
