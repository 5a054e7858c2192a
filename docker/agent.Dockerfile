# syntax=docker/dockerfile:1
# The agent's image: the agent alone, built from the `agent` extra. It holds none of the services'
# code (services/ and gateway/ are not copied, so the package has no hostcheck.services) and none of
# their libraries (no SQLAlchemy, psycopg, Alembic, Redis, Envoy).
#   docker build -f docker/agent.Dockerfile -t hostcheck/agent:0.1.0 .
#   docker run --rm hostcheck/agent:0.1.0 config
# The DaemonSet (k8s/base/agents/agent.yaml) runs it with args: [agent].
# Build it for every architecture your nodes have (the DaemonSet tolerates every taint, so an
# amd64-only image crash-loops with "exec format error" on arm64 nodes), push, and deploy the
# digest (k8s/overlays/prod/site):
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/agent.Dockerfile \
#     -t REGISTRY/hostcheck/agent:0.1.0 --push .
#   docker buildx imagetools inspect REGISTRY/hostcheck/agent:0.1.0 --format '{{json .Manifest.Digest}}'
#
# Base pinned by exact version; pin the digest too when you build for production:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hostcheck
WORKDIR /src
COPY pyproject.toml README.md ./
# hostcheck/ is the namespace root; of the folders its symlinks map in, only agent/ and the generated
# API are copied: the dangling services and gateway links are not packages, so they are left out.
COPY hostcheck hostcheck
COPY gen gen
COPY agent agent
RUN /opt/hostcheck/bin/pip install ".[agent]" \
 && /opt/hostcheck/bin/python -c "import hostcheck.agent.client, importlib.util as u; assert u.find_spec('hostcheck.services') is None" \
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
CMD ["agent"]
