# lnrnn serving image: FastAPI + ONNX Runtime + the bundled model (package data). No torch.
#
#   CPU (default target):
#     docker build -t lnrnn-serve .
#     docker run --rm -p 8000:8000 lnrnn-serve            # API docs: http://127.0.0.1:8000/docs
#   GPU (NVIDIA driver + container toolkit on the host; CUDA 13 / cuDNN 9 base, onnxruntime-gpu):
#     docker build --target gpu -t lnrnn-serve:gpu .
#     docker run --rm --gpus all -p 8000:8000 lnrnn-serve:gpu
#   Another model directory, mounted read-only:
#     docker run --rm -p 8000:8000 -v "$PWD/models/mine:/models/mine:ro" -e LNRNN_MODEL_DIR=/models/mine lnrnn-serve
#
# Settings are LNRNN_* environment variables (LNRNN_THREADS, LNRNN_MAX_TEXT_BYTES, ...; see README "Serve").
# The server binds 0.0.0.0 inside the container only; `lnrnn serve` outside it defaults to 127.0.0.1.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

# --- the page's device mode: ONNX Runtime Web (pinned by package-lock.json), served by the app itself ------
# npm ci's postinstall (serve/page/runtime.mjs) keeps only the two files the page loads, precompressed.
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
COPY serve/page/runtime.mjs ./serve/page/runtime.mjs
RUN npm ci --no-audit --no-fund && rm -rf /root/.npm

# --- CPU: build the venv ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY lnrnn ./lnrnn
COPY train ./train
COPY export ./export
COPY serve ./serve
COPY models ./models
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ".[serve,cpu]"

# --- GPU: the same install on the CUDA runtime base (its own Python, so its own venv) -------------
FROM ${CUDA_IMAGE} AS gpu-builder
# The CUDA base image fixes the Ubuntu release; its python3 packages follow it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY lnrnn ./lnrnn
COPY train ./train
COPY export ./export
COPY serve ./serve
COPY models ./models
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ".[serve,gpu]"

FROM ${CUDA_IMAGE} AS gpu
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home lnrnn
COPY --from=gpu-builder /opt/venv /opt/venv
COPY --from=web /web/node_modules/.lnrnn-web /opt/lnrnn-web
# the default model is package data in the venv (lnrnn.models); mount another and set LNRNN_MODEL_DIR
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 LNRNN_DEVICE=cuda LNRNN_WEB_DIR=/opt/lnrnn-web
WORKDIR /app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
CMD ["lnrnn", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- CPU runtime (last stage: the default target) ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu
RUN useradd --system --uid 10001 --no-create-home lnrnn
COPY --from=builder /opt/venv /opt/venv
COPY --from=web /web/node_modules/.lnrnn-web /opt/lnrnn-web
# the default model is package data in the venv (lnrnn.models); mount another and set LNRNN_MODEL_DIR
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 LNRNN_DEVICE=cpu LNRNN_WEB_DIR=/opt/lnrnn-web
WORKDIR /app
USER 10001
EXPOSE 8000
# urlopen raises on 503 (model not ready) and on connection errors: either makes the check fail.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
CMD ["lnrnn", "serve", "--host", "0.0.0.0", "--port", "8000"]
