"""The documentation stays true to the code: every option and every route is documented."""
import os
import re
import subprocess

from conftest import IA_BIN, ROOT


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def test_every_option_is_in_the_readme(tmp_path):
    out = subprocess.run([IA_BIN, "check-config"], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": os.environ["PATH"]}, check=True).stdout
    options = [line.split("=", 1)[0] for line in out.splitlines() if "=" in line]
    assert len(options) > 20
    readme = read("README.md")
    missing = [name for name in options if f"| `{name}` |" not in readme]
    assert missing == [], f"options missing from README.md's table: {missing}"


def test_every_route_is_in_the_openapi_document():
    router = read("src/api/router.c")
    routes = re.findall(r'\{"(/[^"]*)", [A-Z_| ]+, ACCESS_[A-Z]+, api_', router)
    assert len(routes) >= 10
    spec = read("docs/openapi.yaml")
    missing = []
    for route in routes:
        path = re.sub(r"\*", "{x}", route)
        pattern = "^  " + re.escape(path).replace(r"\{x\}", r"\{[a-z_]+\}") + ":$"
        if not re.search(pattern, spec, re.M):
            missing.append(route)
    assert missing == [], f"routes missing from docs/openapi.yaml: {missing}"
