# netbird-mgmt as NetBird's management image runs: `netbird-mgmt management --log-file console`,
# the config at /etc/netbird/management.json, the store in the volume /var/lib/netbird.
#
#   docker build -t netbird-mgmt .
#   docker run -d --name netbird-mgmt -p 33073:33073 -v netbird-mgmt:/var/lib/netbird \
#     -v "$PWD/management.json:/etc/netbird/management.json:ro" netbird-mgmt --port 33073 --log-file console
#   docker exec netbird-mgmt netbird-mgmt admin account create --domain example.com
#
# Two stages on Debian 12: the build stage installs the build dependencies (the same script as a
# development machine) and builds only the server; the runtime stage holds the binary, the
# Debian packages of the shared libraries it links (listed by the build stage from ldd + dpkg),
# and the example config.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN meson setup /build --buildtype=debugoptimized -Dstrip=true --prefix=/usr \
 && ninja -C /build server/netbird-mgmt \
 && DESTDIR=/out meson install -C /build --no-rebuild \
 && scripts/runtime-packages.sh /build/server/netbird-mgmt >/out/runtime-packages

FROM debian:12-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && xargs -a /tmp/runtime-packages apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/usr/bin/netbird-mgmt /usr/bin/netbird-mgmt
RUN mkdir -p /var/lib/netbird /var/log/netbird
COPY --from=build /out/usr/share/netbird-mgmt/management.json /etc/netbird/management.json
VOLUME /var/lib/netbird
EXPOSE 33073 443 9090
ENTRYPOINT ["/usr/bin/netbird-mgmt", "management"]
CMD ["--log-file", "console"]
