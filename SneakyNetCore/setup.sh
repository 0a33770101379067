#!/usr/bin/env bash
# Create .venv/ in the repository root and install SneakyNet into it (idempotent).
#
#   SNEAKYNET_TORCH=cpu   (default) torch 2.13.0; on this project's machines that is a local CPU build.
#                         Elsewhere set SNEAKYNET_TORCH_INDEX=https://download.pytorch.org/whl/cpu
#                         to get the small CPU wheel instead of PyPI's CUDA one.
#   SNEAKYNET_TORCH=cuda  torch from PyPI (CUDA build on Linux x86_64, several GB), capped at 2.14.1.
#   SNEAKYNET_EXTRAS=test,bench   optional extras of the sneakynet package (default: test).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# torch first, so the package's "torch>=2.4,<=2.14.1" requirement is already met when it installs.
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  case "${SNEAKYNET_TORCH:-cpu}" in
    cpu)
      if [ -n "${SNEAKYNET_TORCH_INDEX:-}" ]; then
        "${pip[@]}" install "torch==2.13.0" --index-url "$SNEAKYNET_TORCH_INDEX"
      else
        "${pip[@]}" install "torch==2.13.0"
      fi ;;
    cuda) "${pip[@]}" install "torch>=2.4,<=2.14.1" ;;
    *) echo "setup.sh: SNEAKYNET_TORCH must be cpu or cuda, got '${SNEAKYNET_TORCH}'" >&2; exit 2 ;;
  esac
fi
"${pip[@]}" install -e "$root/SneakyNetCore[${SNEAKYNET_EXTRAS:-test}]" 2>&1 | grep -v -e "^WARNING: Location" -e "^$" || true
"$venv/bin/python" -c "import sneakynet, torch; print(f'sneakynet {sneakynet.__version__} with torch {torch.__version__} in $venv')"
