# syntax=docker/dockerfile:1
# podvpn webhook image.
#
#   docker build -t ghcr.io/podvpn/podvpn:v0.1.0 .
#
# Three stages: compile TypeScript with the dev dependencies; install production dependencies
# only; copy both onto a distroless Node LTS base that runs as a non-root user and writes nothing
# to its filesystem (the manifests mount it read-only; certificates live in memory or in mounted
# Secrets). test/image/image-layout.test.ts reproduces this layout without a Docker engine.

# Node 24 is the active LTS line. The production dependency tree needs Node >= 22.
ARG NODE_MAJOR=24

FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, exactly as locked, with no install scripts.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

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
