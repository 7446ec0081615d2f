# syntax=docker/dockerfile:1
# Surge's container image: a release build in a Rust image, run from a small distroless image
# as a non-root user. Build: docker build -t surge . ; run: see README, "Running in production".

# ---- build ------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# The dependency layer: the manifests alone, with empty crates, so a change to Surge's code
# rebuilds only Surge and not its few hundred dependencies.
COPY Cargo.toml Cargo.lock ./
COPY crates/core/Cargo.toml crates/core/
COPY crates/engine/Cargo.toml crates/engine/
COPY crates/store/Cargo.toml crates/store/
COPY crates/http/Cargo.toml crates/http/
COPY crates/server/Cargo.toml crates/server/
COPY crates/bench/Cargo.toml crates/bench/
COPY crates/testkit/Cargo.toml crates/testkit/
RUN for crate in core engine store http bench testkit; do \
        mkdir -p "crates/$crate/src" && touch "crates/$crate/src/lib.rs"; \
    done \
    && mkdir -p crates/bench/src crates/server/src \
    && echo 'fn main() {}' > crates/bench/src/main.rs \
    && echo 'fn main() {}' > crates/server/src/main.rs \
    && touch crates/server/src/lib.rs \
    && cargo build --release --locked -p surge \
    && rm -rf crates

# Surge itself.
COPY crates crates
RUN find crates -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p surge \
    && install -D -m 0755 target/release/surge /out/surge \
    && install -d -m 0700 /out/data

# ---- run --------------------------------------------------------------------------------------
# glibc, libgcc and CA certificates, no shell; user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/surge /usr/local/bin/surge
COPY --from=build --chown=65532:65532 /out/data /data
# The only writable path: the embedded database, images and the generated key (the root
# filesystem can be mounted read-only).
VOLUME ["/data"]
ENV SURGE_LISTEN=0.0.0.0:8080 \
    SURGE_DATA_DIR=/data \
    SURGE_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
# The server drains connections and commits what is queued on SIGTERM (up to about 20 s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/surge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/surge"]
CMD ["serve"]
