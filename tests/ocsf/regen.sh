#!/usr/bin/env bash
# Regenerate the OCSF 1.9 compiled schema + per-class JSON Schemas (dev-time only; needs
# the ocsf-schema source tree, which no registry ships). Usage: regen.sh SRC_DIR OUT_DIR
# SRC_DIR = an ocsf-schema source tree at the commit named in README.md
set -euo pipefail
SRC=$1; OUT=$2; W=$(mktemp -d); mkdir -p "$OUT/schemas"
PY=${PY:-python3.13}   # compiler wants >=3.14; 3.12/3.13 work with the 2 shims below
pip download -q --no-deps --python-version 3.14 --only-binary=:all: -d "$W" ocsf-schema-compiler==1.1.1
(cd "$W" && unzip -q ocsf_schema_compiler-1.1.1-py3-none-any.whl 'ocsf_schema_compiler/*')
# shim 1: PEP 649 deferred annotations (3.14) -> postponed annotations
for f in "$W"/ocsf_schema_compiler/*.py; do sed -i '1i from __future__ import annotations' "$f"; done
# shim 2: compression.zstd (3.14 stdlib) is only used to read .zst inputs
mkdir -p "$W/compression"; : > "$W/compression/__init__.py"
printf 'def open(*a, **k):\n    raise RuntimeError("zstd unsupported")\n' > "$W/compression/zstd.py"
PYTHONPATH="$W" "$PY" -m ocsf_schema_compiler "$SRC" > "$OUT/compiled.json" 2> "$W/compile.log" || { cat "$W/compile.log"; exit 1; }
"$PY" -m venv "$W/venv"; "$W/venv/bin/pip" install -q ocsf-json-schema==1.2.0
"$W/venv/bin/python" - "$OUT" <<'PY'
import json, sys
from ocsf_json_schema import OcsfJsonSchemaEmbedded
out = sys.argv[1]; o = OcsfJsonSchemaEmbedded(json.load(open(f"{out}/compiled.json")))
for uid in [6003, 6002, 1001, 1008, 4001, 4002, 4003]:
    n = o.lookup_class_name_from_uid(uid)
    s = o.get_class_schema(n, profiles=["record_integrity", "security_control"])
    json.dump(s, open(f"{out}/schemas/{uid}-{n}.json", "w"), sort_keys=True, separators=(",", ":"))
PY
gzip -9f "$OUT/compiled.json"; rm -rf "$W"; ls -la "$OUT" "$OUT/schemas"
