# seg3d on GPU servers: a pinned CUDA-enabled PyTorch base with seg3d on top.
#   docker build --build-arg SEG3D_SOURCE=<repository URL> -t seg3d:0.1.0 .
#   docker run --gpus all --rm -v "$PWD":/data seg3d:0.1.0 predict scan.nii.gz
# docs/docker.md has the commands for training, several GPUs and several machines.

# The runtime flavour has no C compiler, which torch.compile (seg3d train
# --compile) needs; build with --build-arg BASE=<the same tag>-devel for it.
ARG BASE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# Stage 1: build the seg3d wheel. Build tools and the source stay in this stage.
FROM ${BASE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY seg3d ./seg3d
COPY cli ./cli
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the image users run.
FROM ${BASE}
ARG BASE

ARG SEG3D_VERSION=0.1.0
ARG SEG3D_SOURCE=unknown
LABEL org.opencontainers.image.title="seg3d" \
      org.opencontainers.image.description="DeepMedic-style 3D CNN segmentation of medical volumes" \
      org.opencontainers.image.version="${SEG3D_VERSION}" \
      org.opencontainers.image.source="${SEG3D_SOURCE}" \
      org.opencontainers.image.base.name="${BASE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# Caches go to /tmp so that any --user can run the image.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor \
    SEG3D_CACHE=/tmp/seg3d

# Dependencies first, in their own layer, so code changes do not reinstall them.
# torch comes from the base image; the constraint keeps pip from replacing it.
COPY docker/requirements.txt /tmp/requirements.txt
RUN python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" \
        > /tmp/torch.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt -c /tmp/torch.txt \
    && rm /tmp/requirements.txt

# The package alone, from the wheel: no source tree, no build tools.
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/seg3d-*.whl -c /tmp/torch.txt \
    && rm -rf /tmp/wheels /tmp/torch.txt \
    && seg3d --version

RUN useradd --create-home --uid 1000 seg3d \
    && mkdir -p /data \
    && chown seg3d:seg3d /data
USER 1000:1000
WORKDIR /data

ENTRYPOINT ["seg3d"]
CMD ["--help"]
