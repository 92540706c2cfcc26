#!/usr/bin/env bash
# Create .venv with the kit and everything it needs (safe to run again).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# Debian packages: bubblewrap for the grading sandbox (autograder/grading/sandbox.py),
# Fashion-MNIST (Day 2's harder variant; labkit reads /usr/share/datasets), and
# chromium for the browser test (tests/test_browser.py drives it with Playwright), and a
# Korean font for the Korean edition's plots (without it, the kit uses the NanumGothic
# that the koreanize-matplotlib package ships).
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -d /usr/share/datasets/fashion-mnist ] || missing="$missing dataset-fashion-mnist"
[ -d /usr/share/fonts/truetype/nanum ] || missing="$missing fonts-nanum"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null \
      || echo "NOTE: could not install$missing"
  else
    echo "NOTE: missing Debian packages:$missing (sudo apt-get install$missing)."
    echo "      Without bubblewrap, grading runs WITHOUT a sandbox; without chromium,"
    echo "      the browser test skips."
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# torch is about 6 GB in .venv the first time (with the CUDA libraries pip brings on
# Linux); later runs only check.
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -c constraints.txt -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python - <<'PY'
import torch, torchvision, torchsummary, nbgrader, nbval  # noqa: F401  (torchvision must load)
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, nbgrader {nbgrader.__version__}")
PY
