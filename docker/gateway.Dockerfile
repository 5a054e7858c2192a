# syntax=docker/dockerfile:1
# The gateway: Envoy with the proto descriptor set (for REST transcoding) and the browser UI.
#   docker build -f docker/gateway.Dockerfile -t hostcheck/gateway:0.1.0 .
# Production (k8s/README.md): multi-arch, pushed, deployed by digest (k8s/overlays/prod/site):
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/gateway.Dockerfile \
#     -t REGISTRY/hostcheck/gateway:0.1.0 --push .
#   docker buildx imagetools inspect REGISTRY/hostcheck/gateway:0.1.0 --format '{{json .Manifest.Digest}}'
# Its envoy.yaml is k8s/base/services/gateway/envoy.yaml (rendered from the repo's envoy.yaml with
# Kubernetes Service names as upstreams); Kubernetes mounts the same file from a ConfigMap
# over /etc/envoy. Elsewhere, mount your own rendering (`hostcheck gateway render`) there.
#
# Bases pinned by exact version; pin digests too when you build for production:
#   docker buildx imagetools inspect envoyproxy/envoy:distroless-v1.40.0
ARG NODE_IMAGE=node:22.20.0-bookworm-slim
ARG ENVOY_IMAGE=envoyproxy/envoy:distroless-v1.40.0

# The UI: one self-contained index.html (gateway/web, vite-plugin-singlefile). Its generated
# gRPC-Web client (src/gen) is committed, so the build needs no protoc or buf.
FROM ${NODE_IMAGE} AS web
WORKDIR /src/gateway/web
COPY gateway/web/package.json gateway/web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY gateway/web/ ./
RUN npm run build && test -s dist/index.html

FROM ${ENVOY_IMAGE}
COPY gateway/hostcheck.pb /usr/share/hostcheck/hostcheck.pb
COPY --from=web /src/gateway/web/dist/index.html /usr/share/hostcheck/web/index.html
COPY k8s/base/services/gateway/envoy.yaml /etc/envoy/envoy.yaml
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/envoy"]
CMD ["-c", "/etc/envoy/envoy.yaml", "--disable-hot-restart"]
