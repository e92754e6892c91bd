# Stage 1 builds wheels (the Cython extensions and hnswlib need C and C++ compilers); stage 2 is
# a slim runtime.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home gateway
COPY --from=build /wheels /wheels
# The bedrock and vertex extras bring botocore (SigV4) and google-auth (Vertex OAuth tokens).
RUN pip install --no-cache-dir "$(ls /wheels/gateway-*.whl)[bedrock,vertex]" && rm -rf /wheels
USER gateway
EXPOSE 8080
# Mount a config at /etc/gateway/gateway.yaml and set GATEWAY_CONFIG to use it; without one the
# gateway runs in zero-config mode from <PROVIDER>_API_KEY variables.
ENV GATEWAY_LOG_LEVEL=info
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=2)"]
# Binding 0.0.0.0 requires GATEWAY_MASTER_KEY (or server.master_key), or --allow-unauthenticated.
ENTRYPOINT ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
