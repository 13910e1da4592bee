# One image with every Holdfast service binary:
#   holdfast-ingest, holdfast-relay, holdfast-gateway, holdfast-migrate,
#   holdfast-replay, holdfast-tap
# Build: docker build -t registry.example.com/holdfast/holdfast:0.1.0 .
# Needs no network beyond Debian's package archive.

FROM debian:bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake make gcc libc6-dev pkg-config libssl-dev \
        libwebsockets-dev librdkafka-dev libhiredis-dev libpq-dev libmsgpack-dev libjansson-dev libjwt-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY services services
COPY schemas schemas
COPY bench bench
COPY chaos chaos
COPY tests tests
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    && cmake --build /build -j "$(nproc)" --target \
        holdfast-ingest holdfast-relay holdfast-gateway holdfast-migrate holdfast-replay holdfast-tap \
    && mkdir -p /out \
    && cp /build/bin/holdfast-ingest /build/bin/holdfast-relay /build/bin/holdfast-gateway \
        /build/bin/holdfast-migrate /build/bin/holdfast-replay /build/bin/holdfast-tap /out/ \
    && strip --strip-debug /out/*

FROM debian:bookworm-slim
# Runtime libraries only (tests/integration/095 checks this list against
# what the binaries link); libwebsockets-evlib-uv is the gateway's event
# loop, loaded at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libwebsockets17 libwebsockets-evlib-uv librdkafka1 libhiredis0.14 libpq5 libmsgpackc2 \
        libjansson4 libjwt0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 holdfast \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin holdfast
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# The manifests name the binary to run; bare, the image says what it holds.
CMD ["holdfast-gateway", "--help"]
