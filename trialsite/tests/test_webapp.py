"""The participant app's server side (issue 10): the shell at /app/ and its deep links, the service worker,
the Content-Security-Policy, the manifest and the vendored libraries."""

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "static" / "app"


def _csp(response) -> dict[str, str]:
    return {part.split()[0]: part for part in (p.strip() for p in response["Content-Security-Policy"].split(";"))}


@pytest.mark.parametrize(
    "path", ["/app/", "/app/enrol", "/app/survey/4b0c3c9e-2c1f-4c55-9a77-1d7c6c0f4a11", "/app/kit"]
)
def test_every_path_under_app_is_the_same_shell(client, db, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert '<script type="module" src="/static/app/js/main.js"></script>' in body
    assert '<main id="main"' in body


def test_csp_has_no_inline_script_except_the_hash_pinned_import_map(client, db):
    response = client.get("/app/")
    csp = _csp(response)
    assert csp["default-src"] == "default-src 'self'"
    assert csp["connect-src"] == "connect-src 'self'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    body = response.content.decode()
    inline = re.findall(r"<script(?P<attrs>[^>]*)>(?P<code>.*?)</script>", body, re.S)
    with_code = [(attrs, code) for attrs, code in inline if code.strip()]
    assert [attrs for attrs, _ in with_code] == [' type="importmap"'], "the import map is the only inline script"
    digest = base64.b64encode(hashlib.sha256(with_code[0][1].encode()).digest()).decode()
    assert csp["script-src"] == f"script-src 'self' 'sha256-{digest}'"
    assert json.loads(with_code[0][1])["imports"]["idb"] == "/static/app/vendor/idb.js"


def test_service_worker_is_served_at_the_top_of_its_scope_and_never_cached(client, db):
    response = client.get("/app/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "no-cache"
    assert response["Service-Worker-Allowed"] == "/app/"
    source = response.content.decode()
    assert "__SHELL_VERSION__" not in source and "__SHELL_FILES__" not in source
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", source).group(1))
    assert "/app/" in shell and "/static/app/js/main.js" in shell and "/static/app/vendor/idb.js" in shell
    assert "/static/app/vendor/axe.min.js" not in shell, "the test-only accessibility engine is not in the shell"
    for url in shell[1:]:
        assert (APP / url.removeprefix("/static/app/")).is_file(), url


def test_a_changed_shell_file_makes_a_new_service_worker_version(client, db, tmp_path, monkeypatch):
    from trialsite import webapp

    before = webapp.shell_version()
    fake = tmp_path / "app"
    fake.mkdir()
    for rel in webapp.shell_files():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_bytes((APP / rel).read_bytes())
    monkeypatch.setattr(webapp, "APP_STATIC", fake)
    assert webapp.shell_version() == before
    (fake / "css" / "app.css").write_text("body{}", encoding="utf-8")
    assert webapp.shell_version() != before


def test_manifest_makes_the_app_installable():
    manifest = json.loads((APP / "manifest.webmanifest").read_text(encoding="utf-8"))
    assert manifest["start_url"] == "/app/" and manifest["scope"] == "/app/"
    assert manifest["display"] == "standalone" and manifest["name"]
    sizes = {icon["sizes"]: icon["src"] for icon in manifest["icons"]}
    for size in ("192x192", "512x512"):
        png = (APP / sizes[size]).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert f"{width}x{height}" == size


def test_every_vendored_file_matches_its_recorded_sha256():
    manifest = json.loads((APP / "vendor" / "VENDOR.json").read_text(encoding="utf-8"))
    names = {lib["package"] for lib in manifest["libraries"]}
    assert {"idb", "jsqr", "axe-core"} <= names
    for lib in manifest["libraries"]:
        data = (APP / "vendor" / lib["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == lib["sha256"], lib["file"]
        assert lib["version"] and lib["license"]
    listed = {lib["file"] for lib in manifest["libraries"]} | {"VENDOR.json"}
    assert {p.name for p in (APP / "vendor").iterdir()} == listed, "every vendored file is recorded"


def test_nothing_in_the_app_loads_from_another_origin():
    for path in APP.rglob("*"):
        if path.suffix in {".js", ".css", ".html", ".webmanifest"} and "vendor" not in path.parts:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"https?://", text), path


def test_the_spanish_catalogue_has_every_english_string():
    source = (APP / "js" / "i18n.js").read_text(encoding="utf-8")
    en = source[source.index("  en: {") : source.index("  es: {")]
    es = source[source.index("  es: {") :]
    key = re.compile(r'^\s+"([a-z_.]+)":', re.M)
    assert set(key.findall(en)) == set(key.findall(es))
    assert len(set(key.findall(en))) > 100
