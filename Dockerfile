# Multi-stage build: the BPF object and the native addon are built in a
# Debian bookworm image with the same toolchain as scripts/setup.sh, then
# copied onto a Node 24 runtime image with only what its commands use: the
# addon's shared library (libbpf1, which brings libelf and zlib), iproute2
# (`switchyard demo` builds its namespaces with `ip`; the daemon runs no
# `ip`: pod interfaces come from the addon's link events), bpftool for an
# operator debugging the node
# (`kubectl exec ... -- bpftool map dump pinned /sys/fs/bpf/switchyard/...`),
# and kube-proxy's tools for `switchyard cleanup --kube-proxy` (iptables with
# both backends, nftables, ipset, ipvsadm).
# .dockerignore keeps the build context to the files copied below.
FROM node:24-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev libelf-dev zlib1g-dev \
      pkg-config make cmake g++ python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY bpf ./bpf
COPY native ./native
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev \
 && rm -rf node_modules/node node_modules/.bin/node
COPY src ./src
COPY bin ./bin

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 bpftool iptables nftables ipset ipvsadm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bpf/build ./bpf/build
COPY --from=build /app/native/build/Release ./native/build/Release
COPY --from=build /app/src ./src
COPY --from=build /app/bin ./bin
ENTRYPOINT ["/app/bin/switchyard"]
CMD ["run", "--config=/var/lib/switchyard/config.conf"]
