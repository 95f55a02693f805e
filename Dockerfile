# syntax=docker/dockerfile:1
# One image for both roles; the command picks the role (what `npm run gateway` and
# `npm run worker` run):
#   docker run IMAGE                              the gateway (default)
#   docker run IMAGE node dist/bin/worker.js      a worker
# Both need REDIS_URL and JWT_SECRET; both serve /health, /ready and /metrics on PORT (3000).
# node runs directly, not under `npm run`: npm hands SIGTERM to the `sh -c` it starts, which
# dies without passing it on, so the process would be killed without draining its sockets.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full dependency tree, TypeScript compile --------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY shared ./shared
COPY gateway ./gateway
COPY worker ./worker
# The compiled code, plus every non-TypeScript file of the source trees (Lua scripts, the
# browser demo page, ...) at its source path, for code that reads them relative to the repo.
RUN npm run build \
 && mkdir -p /out \
 && cp -r dist /out/dist \
 && find bin shared gateway worker -type f ! -name '*.ts' -exec cp --parents {} /out/ \;

# ---- runtime: production dependencies and dist/ only, non-root --------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_CACHE=/tmp/.npm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && rm -rf /tmp/.npm
COPY --from=build /out/ ./
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/bin/gateway.js"]
