# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are compiled in their own cached layer, then the app.

FROM rust:1.95-bookworm AS build
WORKDIR /app

# Dependency layer: only the manifests, with stub sources, so it is rebuilt only when
# Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/loadgen.rs \
    && cargo build --release --locked \
    && rm -rf src benches

COPY migrations migrations
COPY src src
COPY benches benches
# The same release build CI's tests compile in debug: `cargo build --release --locked`.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home nearbytix
COPY --from=build /app/target/release/nearbytix /usr/local/bin/nearbytix
USER nearbytix
WORKDIR /data
ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite:///data/nearbytix.db \
    LOG_FORMAT=json
EXPOSE 8000
# The binary checks itself: no curl in the image.
HEALTHCHECK --interval=10s --timeout=6s --start-period=15s --retries=3 CMD ["nearbytix", "healthcheck"]
ENTRYPOINT ["nearbytix"]
CMD ["serve"]
