# imagemachines in a container: the web interface (`serve`) by default, every other command by argument.
#
#   docker build -t imagemachines .                                 # CPU (PyTorch's CPU-only wheels)
#   docker build -t imagemachines:cuda --build-arg TORCH_INDEX= .   # CUDA (PyTorch's default wheels; run with --gpus all)
#   docker compose up                                               # serve on http://127.0.0.1:8000/ (compose.yaml)
#
# The package is installed by scripts/venv.sh, the same script ./run.sh and ./test.sh use on a fresh clone,
# so the image and a clone cannot drift apart. See docs/containers.md for what was and was not verified.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# Extra package index for PyTorch; empty: the default index (CUDA-enabled wheels on Linux x86_64).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG UID=1000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IMAGEMACHINES_DATA_DIR=/data \
    TORCH_HOME=/cache/torch \
    XDG_CACHE_HOME=/cache \
    MPLCONFIGDIR=/cache/matplotlib \
    HOME=/home/imagemachines

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN useradd --create-home --uid "${UID}" --shell /usr/sbin/nologin imagemachines \
    && mkdir -p /app /data /runs /cache \
    && chown imagemachines:imagemachines /data /runs /cache

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY scripts/ scripts/
COPY src/ src/
RUN PIP_EXTRA_INDEX_URL="${TORCH_INDEX}" bash -c 'source scripts/venv.sh' \
    && /app/.venv/bin/imagemachines --help > /dev/null

ENV PATH=/app/.venv/bin:$PATH
USER ${UID}:${UID}
VOLUME ["/data", "/runs", "/cache"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/status', timeout=4)"]

ENTRYPOINT ["imagemachines"]
# Inside the container the server must listen on all interfaces; compose.yaml publishes it on the host's
# 127.0.0.1 only.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--cache-dir", "/cache/renders"]
