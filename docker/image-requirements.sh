#!/bin/sh
# Rewrite requirements.txt (stdin) for an image build (stdout): `image-requirements.sh cpu|gpu`.
#
# The lock pins public versions (`torch==X`, `xgboost-cpu==Y`). The CPU image takes it as it
# is: docker/Dockerfile gives uv the PyTorch CPU index as an extra index, whose `X+cpu` build
# satisfies `torch==X` and wins over the CUDA build of the same version. The GPU image keeps
# `torch==X` (PyPI's default wheel is built with CUDA) and swaps `xgboost-cpu` for the full
# `xgboost` wheel (built with CUDA) at the same version: `pip install marketflow[gpu]`.
# tests/test_compose.py runs this script on the real requirements.txt.
set -eu

flavour="${1:-}"
case "$flavour" in
  cpu)
    cat
    ;;
  gpu)
    sed -e 's/^xgboost-cpu==/xgboost==/'
    ;;
  *)
    echo "usage: $0 cpu|gpu < requirements.txt > requirements.image.txt" >&2
    exit 2
    ;;
esac
