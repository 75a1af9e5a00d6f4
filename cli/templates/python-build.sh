#!/bin/sh
# Builds {{name}}.wasm with componentize-py (pip install componentize-py==0.25.1).
set -e
cd "$(dirname "$0")"
${COMPONENTIZE_PY:-componentize-py} -d wit -w plugin componentize app -o {{name}}.wasm
echo "built {{name}}.wasm; check it with: warden check {{name}}.wasm"
