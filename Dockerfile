# nftproxy image: Node 20 slim, libmnl (nftproxy's netlink socket), libbpf.
# `run` never starts nft or conntrack (both over netlink); the nftables package stays for
# operators (nft list …, loading dump's text) and brings libmnl0, conntrack stays for operators. Build: docker build -t nftproxy .
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY native ./native
RUN npx tsc -p tsconfig.json

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables conntrack libbpf1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/nftproxy
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY bpf/*.o ./bpf/
ENTRYPOINT ["node", "/opt/nftproxy/bin/nftproxy.js"]
CMD ["run"]
