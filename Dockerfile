# tvpn image: build stage compiles the native addon and the TypeScript, runtime stage keeps
# only what runs. BASE can point at a locally made image (the Docker test builds one with
# debootstrap, since no registry is reachable there).
ARG BASE=node:22-bookworm-slim

FROM ${BASE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
COPY native ./native
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY bin ./bin
COPY configs ./configs
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 iputils-ping \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tvpn
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/configs ./configs
COPY --from=build /src/native/build/Release/tvpn.node ./native/build/Release/tvpn.node
RUN ln -s /opt/tvpn/bin/tvpn /usr/local/bin/tvpn
VOLUME ["/etc/tvpn", "/var/lib/tvpn"]
EXPOSE 51820/udp
ENTRYPOINT ["tvpn"]
CMD ["server", "-c", "/etc/tvpn/server.yaml"]
