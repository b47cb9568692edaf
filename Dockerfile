# One image for the six services; each container picks its service with its command,
# e.g. `python -m services.intake`. Built for production: no embedded servers, no dev tools.
# The base is pinned to the exact Python release; pin its digest too where the registry is reachable
# (`docker buildx imagetools inspect python:3.11.7-slim-bookworm`), none can be read from this machine.
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md requirements/service.lock ./
# Every dependency, transitive ones too, at the version and with the hashes of the lock: the same at every build.
RUN python -m venv /venv && /venv/bin/pip install --no-compile --require-hashes -r service.lock
COPY libs libs
COPY services services
RUN /venv/bin/pip install --no-compile --no-deps .

FROM python:3.11.7-slim-bookworm
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 appeals && useradd --system --uid 10001 --gid appeals --no-create-home appeals
WORKDIR /app
COPY --from=build /venv /venv
COPY --chown=root:root config /app/config
USER 10001:10001
# Every service listens on 0.0.0.0:8000 in a container, where compose and Kubernetes probe it and Prometheus
# scrapes it (tests/deploy/test_listening.py holds them to it), and reads /app/config.
ENV INTAKE_HTTP_HOST=0.0.0.0 ROUTER_HTTP_HOST=0.0.0.0 SLA_HTTP_HOST=0.0.0.0 NOTIFY_HTTP_HOST=0.0.0.0 \
    STATS_HTTP_HOST=0.0.0.0 WEB_HTTP_HOST=0.0.0.0 INTAKE_HTTP_PORT=8000 ROUTER_HTTP_PORT=8000 \
    SLA_HTTP_PORT=8000 NOTIFY_HTTP_PORT=8000 STATS_HTTP_PORT=8000 WEB_HTTP_PORT=8000 \
    INTAKE_CONFIG_DIR=/app/config ROUTER_CONFIG_DIR=/app/config SLA_CONFIG_DIR=/app/config \
    NOTIFY_CONFIG_DIR=/app/config STATS_CONFIG_DIR=/app/config WEB_CONFIG_DIR=/app/config
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["python", "-m", "services.intake"]
