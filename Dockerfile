# syntax=docker/dockerfile:1
# podvpn's two images, from one build (the same compiled dist/ and production dependencies):
#
#   docker build -t ghcr.io/podvpn/podvpn:v0.1.0 .                              the webhook (and the gate)
#   docker build --target agent -t ghcr.io/podvpn/podvpn-agent:v0.1.0 .         the node agent
#
# The webhook's stage is the last, so a plain `docker build .` builds it.
#
# The webhook in three stages: compile TypeScript with the dev dependencies; install production
# dependencies only; copy both onto a distroless Node LTS base that runs as a non-root user and writes nothing
# to its filesystem (the manifests mount it read-only; certificates live in memory or in mounted
# Secrets). test/image/image-layout.test.ts reproduces this layout without a Docker engine. The
# agent's stage reuses the first two (see it below).

# Node 24 is the active LTS line. The production dependency tree needs Node >= 22.
ARG NODE_MAJOR=24
# The node images' Debian release (node:24-bookworm-slim); the agent stage uses the same one.
ARG DEBIAN_RELEASE=bookworm

FROM node:${NODE_MAJOR}-${DEBIAN_RELEASE}-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:${NODE_MAJOR}-${DEBIAN_RELEASE}-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, exactly as locked, with no install scripts.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# The node agent (manifests/agent, DaemonSet podvpn-agent). It runs commands inside pods' network
# namespaces, so it needs a distribution with the tools, not distroless: iproute2 (ip, bridge), nftables
# (nft), util-linux (nsenter) and busybox (its udhcpc applet, the DHCP client pod-gateway's client uses),
# plus the udhcpc script at the path src/agent/tunnel.ts names (UDHCPC_SCRIPT). Node is the binary of
# the build stage's image, on the same Debian release, so its glibc and libstdc++ match.
# test/image/agent-image.test.ts holds this list to the commands src/agent invokes.
# It runs as root (UID 0): Kubernetes gives added capabilities (NET_ADMIN, NET_RAW, SYS_ADMIN,
# SYS_PTRACE) only to UID 0, and the DaemonSet drops every other one. It writes nothing to its root
# filesystem (nsenter, ip, bridge, nft and `udhcpc -q` without a pid file keep no files; the lease is
# printed, not stored), so the DaemonSet mounts it read-only with an emptyDir on /tmp only.
FROM debian:${DEBIAN_RELEASE}-slim AS agent
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables util-linux busybox \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
ENV NODE_ENV=production
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=deps --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /src/dist ./dist
COPY --chown=0:0 package.json ./
COPY --chown=0:0 --chmod=0755 src/agent/udhcpc-lease.sh /usr/share/podvpn/udhcpc-lease.sh
USER 0:0
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/node", "/app/dist/agent/main.js"]

# The webhook: distroless Node, non-root, nothing written to its filesystem.
FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /src/dist ./dist
COPY --chown=0:0 package.json ./
# distroless "nonroot": uid/gid 65532, the same numbers the Deployment's securityContext sets.
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/nodejs/bin/node", "dist/cli.js"]
CMD ["serve"]
