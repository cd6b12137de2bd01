#!/bin/sh
# Rewrite requirements.txt (stdin) for an image build (stdout): `image-requirements.sh cpu|gpu`.
#
# Both flavours drop the `--find-links /opt/wheels` line: that wheel cache only exists on the
# developer machines. The CPU image keeps the `torch==X+cpu` pin (the wheel then comes from the
# PyPI-compatible PyTorch CPU index, given to uv as an extra index by docker/Dockerfile). The GPU
# image swaps it for the default `torch==X` wheel on PyPI (built with CUDA) and `xgboost-cpu` for
# the full `xgboost` wheel (built with CUDA), at the same versions.
# tests/test_compose.py runs this script on the real requirements.txt.
set -eu

flavour="${1:-}"
case "$flavour" in
  cpu)
    sed -e '/^--find-links/d'
    ;;
  gpu)
    sed -e '/^--find-links/d' \
        -e 's/^torch==\([^+ ;]*\)+cpu/torch==\1/' \
        -e 's/^xgboost-cpu==/xgboost==/'
    ;;
  *)
    echo "usage: $0 cpu|gpu < requirements.txt > requirements.image.txt" >&2
    exit 2
    ;;
esac
