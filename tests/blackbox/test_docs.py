"""The documentation stays true to the code: every option and every route is documented, and
the running server answers what docs/openapi.yaml says, in the shapes it documents."""
import os
import re
import subprocess
import uuid

import jsonschema
import pytest
import requests
import yaml

from conftest import IA_BIN, ROOT, Service


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


# The OpenAPI document against the route table and against the running server.

SPEC = yaml.safe_load(read("docs/openapi.yaml"))
FLAGS = {"GET_HEAD": {"get", "head"}, "HTTP_GET": {"get"}, "HTTP_HEAD": {"head"},
         "HTTP_POST": {"post"}, "HTTP_PUT": {"put"}, "HTTP_PATCH": {"patch"},
         "HTTP_DELETE": {"delete"}, "HTTP_OPTIONS": {"options"}}
OPERATIONS = {"get", "head", "post", "put", "patch", "delete", "options"}


def router_table():
    """{route pattern ("*" for each {name}): {method: access class}} from src/api/router.c."""
    table = {}
    rows = re.findall(r'\{"(/[^"]*)", ([A-Z_| ]+), ACCESS_([A-Z]+), api_',
                      read("src/api/router.c"))
    for pattern, flags, access in rows:
        for flag in flags.split("|"):
            for method in FLAGS[flag.strip()]:
                table.setdefault(spec_pattern(pattern), {})[method] = access
    return table


def spec_pattern(path):
    """The router's pattern for a documented path: each {name} is a "*"."""
    return re.sub(r"\{[a-z_]+\}", "*", path)


def documented_methods(path):
    """The methods of a documented path; HEAD goes with GET, as the server answers it."""
    ops = {m for m in SPEC["paths"][path] if m in OPERATIONS}
    return ops | ({"head"} if "get" in ops else set())


def test_every_route_and_method_is_documented_and_nothing_more():
    table = router_table()
    documented = {spec_pattern(p): p for p in SPEC["paths"]}
    assert sorted(set(table) - set(documented)) == [], "routes missing from docs/openapi.yaml"
    assert sorted(set(documented) - set(table)) == [], "documented paths the server lacks"
    for pattern, methods in table.items():
        path = documented[pattern]
        assert documented_methods(path) == set(methods), f"{path}: methods differ from router.c"
        for method in SPEC["paths"][path].keys() & OPERATIONS:
            op = SPEC["paths"][path][method]
            public = op.get("security") == []
            assert public == (methods[method] == "PUBLIC"), f"{method} {path}: access class"
            if not public:  # API keys (or a signature) may refuse it
                assert {"401", "403"} <= op["responses"].keys(), f"{method} {path}: 401/403"


def test_the_json_schemas_are_valid_and_every_reference_resolves():
    assert SPEC["openapi"].startswith("3.1.")
    refs = re.findall(r'\$ref: "#/([^"]+)"', read("docs/openapi.yaml"))
    for ref in refs:
        node = SPEC
        for part in ref.split("/"):
            node = node[part]
    for schema in SPEC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def concrete(path):
    """A request path for a documented path: any UUID for ids, e1 for an event, x for an asset."""
    path = path.replace("{event_id}", "e1").replace("{asset}", "x")
    return re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)


def resolve(node):
    while "$ref" in node:
        target = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def check(resp, method, path):
    """The response is documented for this operation, and its JSON body has the documented shape."""
    op = SPEC["paths"][path][method]
    status = str(resp.status_code)
    assert status in op["responses"], f"{method.upper()} {path}: undocumented {status} {resp.text}"
    documented = resolve(op["responses"][status])
    content = documented.get("content", {})
    ctype = resp.headers.get("Content-Type", "").split(";")[0]
    if ctype == "application/json" and "application/json" in content:
        schema = content["application/json"].get("schema", {})
        jsonschema.Draft202012Validator(
            schema, resolver=jsonschema.RefResolver.from_schema(SPEC),
            format_checker=jsonschema.FormatChecker()).validate(resp.json())
    elif content:
        types = {t.split(";")[0] for t in content}
        assert ctype in types or any(t.endswith("/*") for t in types), (path, status, ctype)
    elif method != "head":
        assert resp.content == b"", f"{method.upper()} {path} {status}: a body not documented"
    return resp


def test_every_documented_path_answers_its_documented_methods(service):
    """PUT, which no route takes, gets 405 with Allow: exactly the documented methods."""
    for path in SPEC["paths"]:
        r = requests.put(service.base + concrete(path), timeout=10)
        assert r.status_code == 405, (path, r.status_code, r.text)
        allow = {m.strip().lower() for m in r.headers["Allow"].split(",")}
        assert allow == documented_methods(path), path
        assert r.json()["code"] == "method_not_allowed"
    r = requests.get(service.base + "/no/such/path", timeout=10)
    assert r.status_code == 404 and r.json() == {"detail": "not found", "code": "not_found"}


def test_documented_shapes_of_the_main_endpoints(service, file_server, redis_server):
    base = service.base
    r = check(requests.post(base + "/submit", json={"video_url": file_server.url("clip.mp4"),
                                                     "analysis": False},
                            headers={"Idempotency-Key": "shape-1"}, timeout=10),
              "post", "/submit")
    assert r.status_code == 200
    tid = r.json()["task_id"]
    assert r.headers["Location"] == f"/status/{tid}"
    check(requests.get(f"{base}/status/{tid}", timeout=10), "get", "/status/{task_id}")
    code, body = service.wait_done(tid)
    assert (code, body["status"]) == (200, "success"), body
    check(requests.get(f"{base}/status/{tid}", timeout=10), "get", "/status/{task_id}")
    check(requests.get(f"{base}/processed/{tid}", timeout=10), "get", "/processed/{video_id}")
    meta = check(requests.get(f"{base}/metadata/{tid}", timeout=10), "get",
                 "/metadata/{video_id}")
    assert meta.json()["video_id"] == tid
    check(requests.get(f"{base}/download/{tid}/metadata", timeout=10), "get",
          "/download/{video_id}/metadata")
    for bad in ({"video_url": "ftp://x/y"}, {"video_url": 3},
                {"video_url": "http://x/", "analysis": 1}):
        r = check(requests.post(base + "/submit", json=bad, timeout=10), "post", "/submit")
        assert r.status_code == 422
    r = check(requests.post(base + "/submit", json={"video_url": "http://x/other"},
                            headers={"Idempotency-Key": "shape-1"}, timeout=10), "post", "/submit")
    assert r.status_code == 409
    other = str(uuid.uuid4())
    for method, path in (("get", "/status/{task_id}"), ("get", "/processed/{video_id}"),
                         ("get", "/metadata/{video_id}"), ("get", "/stream/{video_id}"),
                         ("delete", "/videos/{video_id}")):
        url = base + re.sub(r"\{[a-z_]+\}", other, path)
        r = check(requests.request(method, url, timeout=10), method, path)
        assert r.status_code == 404
    for path in ("/healthz", "/readyz"):
        assert check(requests.get(base + path, timeout=10), "get", path).status_code == 200
    r = check(requests.delete(f"{base}/videos/{tid}", timeout=10), "delete", "/videos/{video_id}")
    assert r.status_code == 204
    r = check(requests.delete(f"{base}/videos/{tid}", timeout=10), "delete", "/videos/{video_id}")
    assert r.status_code == 404
    check(requests.get(f"{base}/status/{tid}", timeout=10), "get", "/status/{task_id}")


def test_openapi_json_and_the_docs_page_are_served(service):
    r = check(requests.get(service.base + "/openapi.json", timeout=10), "get", "/openapi.json")
    assert r.status_code == 200 and r.json() == SPEC  # the build's conversion of the YAML
    page = check(requests.get(service.base + "/docs", timeout=10), "get", "/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text)
    assert sorted(assets) == ["/docs/init.js", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"]
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)  # nothing from elsewhere
    for asset in assets:
        r = check(requests.get(service.base + asset, timeout=10), "get", "/docs/{asset}")
        assert r.status_code == 200 and len(r.content) > 0, asset
    init = requests.get(service.base + "/docs/init.js", timeout=10).text
    assert '"/openapi.json"' in init and "validatorUrl: null" in init
    r = check(requests.get(service.base + "/docs/../README.md", timeout=10), "get", "/docs/{asset}")
    assert r.status_code == 404


@pytest.fixture
def keyed_service(tmp_path, redis_server, file_server):
    svc = Service(str(tmp_path), redis_server, file_server, extra_env={"API_KEYS": "key-1"})
    yield svc
    assert all(c == 0 for c in svc.stop().values()), svc.dump_logs()


def test_documented_refusals_with_api_keys(keyed_service):
    base = keyed_service.base
    r = check(requests.post(base + "/submit", json={"video_url": "http://x/"}, timeout=10),
              "post", "/submit")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    r = check(requests.delete(f"{base}/videos/{uuid.uuid4()}", timeout=10,
                              headers={"Authorization": "Bearer nope"}),
              "delete", "/videos/{video_id}")
    assert r.status_code == 403
    for path in ("/openapi.json", "/docs", "/healthz"):  # public
        assert check(requests.get(base + path, timeout=10), "get", path).status_code == 200
