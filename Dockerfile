# syntax=docker/dockerfile:1
# Build stage: install the locked dependencies into a virtual environment.
FROM python:3.11-slim AS build
WORKDIR /app
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

# Runtime stage: the venv and the code, run as an unprivileged user.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home gateway
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY openapi.yaml routing.yaml ./
COPY gateway ./gateway
COPY generated ./generated
ENV PATH="/opt/venv/bin:$PATH" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 SERVER_PORT=8080
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SERVER_PORT','8080'), timeout=2).status == 200 else 1)"]
CMD ["python", "-m", "gateway"]
