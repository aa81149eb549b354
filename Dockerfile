# factors: a release build in a small Debian image.
#   docker build -t factors .
#   docker run -p 8080:8080 -e FACTORS__DATABASE__URL=... -e FACTORS__CODES__HMAC_KEY=... factors
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p factors

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app factors
COPY --from=build /src/target/release/factors /usr/local/bin/factors
COPY config /app/config
WORKDIR /app
ENV FACTORS_ENV=production \
    FACTORS_CONFIG_DIR=/app/config \
    FACTORS__SERVER__ADDR=0.0.0.0:8080
EXPOSE 8080
USER factors
ENTRYPOINT ["factors"]
CMD ["serve"]
