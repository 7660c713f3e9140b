# syntax=docker/dockerfile:1
#
# Kairos worker image.
#
#   docker build -t kairos:dev .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 -p 6066:6066 kairos:dev
#
# Dependencies come from requirements-runtime.lock: the runtime part of requirements.lock
# (the lock CI installs), same pins, same extras minus the test tools.
# tests/deploy/test_dockerfile.py keeps this file, that lock and the CI install in step.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never

COPY --from=uv /uv /usr/local/bin/uv
RUN uv venv --python /usr/local/bin/python3 /opt/kairos

WORKDIR /src

# Dependencies first, in their own layer: exactly the locked set, nothing resolved here.
COPY requirements-runtime.lock ./
RUN uv pip sync --python /opt/kairos/bin/python requirements-runtime.lock

# Then the project itself, without dependencies, and a check that nothing is missing.
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY cep ./cep
RUN uv pip install --python /opt/kairos/bin/python --no-deps . \
    && uv pip check --python /opt/kairos/bin/python

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kairos" \
      org.opencontainers.image.description="Pattern-detection agents for Apache Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER,
# and the Helm chart's securityContext uses the same ids.
RUN groupadd --system --gid 10001 kairos \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kairos \
       --no-create-home --shell /usr/sbin/nologin kairos \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/kairos

COPY --from=builder /opt/kairos /opt/kairos

ENV PATH="/opt/kairos/bin:${PATH}" \
    VIRTUAL_ENV=/opt/kairos \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAIROS_WEB_HOST=0.0.0.0 \
    KAIROS_WEB_PORT=6066 \
    KAIROS_DATA_DIR=/var/lib/kairos

WORKDIR /var/lib/kairos
USER 10001:10001
EXPOSE 6066

# Docker / Compose only (Kubernetes uses the chart's probes). Python stdlib: slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('KAIROS_WEB_PORT') or '6066'; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % port, timeout=4).status == 200 else 1)"]

ENTRYPOINT ["kairos"]
CMD ["worker"]
