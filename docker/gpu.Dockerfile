# syntax=docker/dockerfile:1
# kdaug's GPU worker image: the CPU worker image (docker/Dockerfile) with torch's CUDA build in place
# of the CPU one, for Dataflow workers with an accelerator (`--device cuda`, docker/README.md).
# The NVIDIA driver comes from Dataflow (`worker_accelerator=...;install-nvidia-driver`); the CUDA
# runtime libraries come with the wheel. Build from the repository root after the worker image:
#   docker build -f docker/gpu.Dockerfile --build-arg WORKER_IMAGE=IMAGE -t GPU_IMAGE .
ARG WORKER_IMAGE=kdaug-worker:latest
FROM ${WORKER_IMAGE}

# The same torch release as pyproject.toml's pin, CUDA build. CUDA_INDEX picks the CUDA version the
# wheel is built for (e.g. https://download.pytorch.org/whl/cu126 for older drivers).
ARG CUDA_INDEX=https://download.pytorch.org/whl/cu128
RUN TORCH_PIN="$(python -c 'import torch; print(torch.__version__.split("+")[0])')" \
    && pip install --no-cache-dir --force-reinstall --index-url "${CUDA_INDEX}" "torch==${TORCH_PIN}" \
    && python -c "import torch; assert torch.version.cuda, torch.__version__"
