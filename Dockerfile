# tvpn image: a build stage compiles the native addon and the TypeScript, a runtime stage keeps
# only what runs (the compiled CLI, production dependencies, the addon) plus iproute2.
#
#   docker build -t tvpn .
#   docker run --rm tvpn genkey
#   docker run --cap-add NET_ADMIN --device /dev/net/tun -v "$PWD/configs/docker:/etc/tvpn:ro" tvpn
#
# BASE is any Debian-like image with Node >= 20.19 and npm on PATH and Node's headers under
# <node prefix>/include/node (node:22-bookworm-slim has all three). The Docker test builds this
# same file from a base it makes with debootstrap, which already holds python3, make, g++,
# iproute2 and ping: every apt step below runs only for what the base lacks.
ARG BASE=node:22-bookworm-slim

FROM ${BASE} AS build
RUN set -eu; missing=; \
    for t in python3:python3 make:make g++:g++; do \
      command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
# Dependencies first (their own layer, kept while the lockfile is unchanged), then the addon by
# the package's install script (node-gyp against this Node's headers, nothing downloaded) and
# the TypeScript of src/ only: the image runs dist/src (bench/ needs the test helpers).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY native ./native
RUN npm run install
COPY tsconfig.json ./
COPY src ./src
RUN echo '{ "extends": "./tsconfig.json", "include": ["src"] }' > tsconfig.image.json \
    && ./node_modules/.bin/tsc -p tsconfig.image.json \
    && npm prune --omit=dev --no-audit --no-fund

FROM ${BASE}
RUN set -eu; missing=; \
    for t in ip:iproute2 ping:iputils-ping; do \
      command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /opt/tvpn
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/native/build/Release/tvpn.node ./native/build/Release/tvpn.node
COPY bin ./bin
COPY configs/server.yaml configs/client.yaml ./configs/
COPY schema ./schema/
COPY proto ./proto/
RUN ln -sf /opt/tvpn/bin/tvpn /usr/local/bin/tvpn \
    && mkdir -p /etc/tvpn /var/lib/tvpn && chmod 700 /var/lib/tvpn \
    && tvpn --version
# /etc/tvpn: server.yaml or client.yaml and the key files (mode 0600); /var/lib/tvpn: the
# server's address leases, kept across restarts.
VOLUME ["/etc/tvpn", "/var/lib/tvpn"]
EXPOSE 51820/udp
# tvpn handles SIGTERM itself (removes routes and tun0, flushes leases, exits 0), also as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tvpn"]
CMD ["server", "-c", "/etc/tvpn/server.yaml"]
