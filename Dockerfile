# syntax=docker/dockerfile:1.7
# The bot image: `baton bot` (Slack ingress, run supervisor, runner API). Multi-stage: build with dev
# dependencies, then a runtime with production dependencies only, as a non-root user.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Dependencies first (cached while sources change); no install script is needed to build.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
# The image's own node runs the compiler: with --ignore-scripts the `node` devDependency (a Node
# binary fetched by its install script) is absent, and `npm run` would put its stub first on PATH.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM node:24-slim AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    BATON_DATA_DIR=/var/lib/baton
# git: the publisher pushes `baton/*` branches from the agents' bundles; ca-certificates for HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 baton \
 && useradd --uid 10001 --gid baton --home-dir /home/baton --create-home --shell /usr/sbin/nologin baton \
 && install -d -o baton -g baton /var/lib/baton
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist
COPY bin ./bin
RUN chmod 0755 bin/baton.js && ln -s /app/bin/baton.js /usr/local/bin/baton
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["baton"]
CMD ["bot"]
