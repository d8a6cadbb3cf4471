# The hapa-telemetry demo backend (FastAPI + uvicorn), instrumented by the package.
# Used by docker-compose.yml as the `app` service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Install the package from the repository (not from an index) with the same pins CI tests
# (constraints.txt); the [demo] extra brings uvicorn for the CMD below.
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY src ./src
# PIP_CONSTRAINT pins the build backend in pip's isolated build env as well.
RUN PIP_CONSTRAINT=/app/constraints.txt pip install -c constraints.txt ".[demo]" \
    && useradd --system --uid 10001 --home-dir /app hapa \
    && mkdir -p /app/logs \
    && chown hapa /app/logs

# The seed's environment: JSON logs at INFO into /app/logs (a volume in compose).
ENV LOG_LEVEL=INFO \
    DEBUG=False \
    ENABLE_METRICS=True \
    METRICS_PORT=8000 \
    LOG_DIRECTORY=/app/logs \
    OTEL_SERVICE_NAME=hapa-backend

VOLUME ["/app/logs"]
USER hapa
EXPOSE 8000

CMD ["uvicorn", "hapa_telemetry.demo.app:app", "--host", "0.0.0.0", "--port", "8000"]
