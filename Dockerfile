# One image for the API and the worker: `serve` (default) or `worker` as the command.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install -r /tmp/requirements.lock

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 qbsync \
    && useradd --system --uid 10001 --gid qbsync --home-dir /app --no-create-home qbsync
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY src ./src
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/src \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QBSYNC_ENV=production \
    QBSYNC_HOST=0.0.0.0 \
    QBSYNC_PORT=8000
USER qbsync:qbsync
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["python", "-m", "qbsync.cli"]
CMD ["serve"]
