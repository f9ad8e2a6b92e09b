# quotapool in a container: `docker build -t quotapool .` then
#   docker run -d --name quotapool -p 8410:8410 -v quotapool:/data quotapool
# Clients outside the container are served only with client keys:
#   docker exec quotapool quotapool keys create me      (or set QUOTAPOOL_ALLOW_REMOTE=true)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/quotapool \
 && /opt/quotapool/bin/pip install --no-cache-dir --disable-pip-version-check ".[postgres]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data quotapool \
 && mkdir -p /data && chown quotapool /data && chmod 700 /data
COPY --from=build /opt/quotapool /opt/quotapool
ENV PATH=/opt/quotapool/bin:$PATH \
    QUOTAPOOL_HOME=/data \
    QUOTAPOOL_HOST=0.0.0.0 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME /data
USER quotapool
EXPOSE 8410
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8410/health', timeout=2)"]
CMD ["quotapool", "serve"]
