# seg3d on GPU servers: a pinned CUDA-enabled PyTorch base with seg3d on top.
#   docker build -t seg3d .
#   docker run --gpus all --rm -v "$PWD":/data seg3d predict scan.nii.gz
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ARG SEG3D_VERSION=0.1.0
ARG SEG3D_SOURCE=unknown
LABEL org.opencontainers.image.title="seg3d" \
      org.opencontainers.image.description="DeepMedic-style 3D CNN segmentation of medical volumes" \
      org.opencontainers.image.version="${SEG3D_VERSION}" \
      org.opencontainers.image.source="${SEG3D_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg

WORKDIR /opt/seg3d

# Dependencies first, in their own layer, so code changes do not reinstall them.
# torch comes from the base image; the constraint keeps pip from replacing it.
COPY docker/requirements.txt ./requirements.txt
RUN python -c "import torch; print(f'torch=={torch.__version__.split(\"+\")[0]}')" > torch.txt \
    && pip install --no-cache-dir -r requirements.txt -c torch.txt

# The package itself, built from a wheel so that no build tools stay behind.
COPY pyproject.toml README.md ./
COPY seg3d ./seg3d
COPY cli ./cli
RUN pip install --no-cache-dir --no-deps . -c torch.txt \
    && rm -rf /opt/seg3d/build /opt/seg3d/*.egg-info

RUN useradd --create-home --uid 1000 seg3d \
    && mkdir -p /data \
    && chown seg3d:seg3d /data
USER 1000:1000
WORKDIR /data

ENTRYPOINT ["seg3d"]
CMD ["--help"]
