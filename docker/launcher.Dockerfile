# syntax=docker/dockerfile:1
# Flex Template launcher for `kdaug run`. It is the worker image plus Google's Python launcher
# binary, so the job graph is built with exactly the code, pins, teacher and data the workers run
# (the same files at the same paths: a packaged default input resolves identically on both).
# Build from the repository root after the worker image (docker/README.md):
#   docker build -f docker/launcher.Dockerfile --build-arg WORKER_IMAGE=IMAGE -t LAUNCHER_IMAGE .
ARG WORKER_IMAGE=kdaug-worker:latest

# Google's Python 3.11 launcher base, used only for its launcher binary. Its tags are build dates;
# pin a digest (`...-base@sha256:...`) for reproducible builds.
# hadolint ignore=DL3007
FROM gcr.io/dataflow-templates-base/python311-template-launcher-base:latest AS launcher

FROM ${WORKER_IMAGE}
ARG WORKER_IMAGE
COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher
COPY docker/flex_main.py /opt/kdaug/flex_main.py

# The launcher runs FLEX_TEMPLATE_PYTHON_PY_FILE with the template parameters as --name=value;
# flex_main.py sends the workers to this same image unless sdk_container_image is given.
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/kdaug/flex_main.py \
    KDAUG_WORKER_IMAGE=${WORKER_IMAGE}

ENTRYPOINT ["/opt/google/dataflow/python_template_launcher"]
