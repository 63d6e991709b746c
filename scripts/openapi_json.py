#!/usr/bin/python3
"""docs/openapi.yaml to JSON for GET /openapi.json; run by the build (CMakeLists.txt).

Usage: openapi_json.py IN.yaml OUT.json. Fails (exit 1) on YAML that is not an OpenAPI 3.1
document or holds values JSON cannot carry (dates). Writes OUT atomically.
"""
import json
import os
import sys

import yaml


def convert(src, dst):
    with open(src, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1."):
        raise ValueError(f"{src}: not an OpenAPI 3.1 document")
    text = json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False)
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(tmp, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        convert(sys.argv[1], sys.argv[2])
    except (OSError, ValueError, TypeError, yaml.YAMLError) as e:
        sys.exit(f"openapi_json.py: {e}")
