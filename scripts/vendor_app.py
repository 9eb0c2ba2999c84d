"""Refresh the participant app's vendored browser libraries from the npm registry (`make vendor`).

For each library in trialsite/static/app/vendor/VENDOR.json: `npm view` gives the version (the newest matching
the recorded range), licence, tarball and its integrity; `npm pack` fetches the tarball, whose sha512 is checked
against the registry's integrity; the one file the app uses is copied out and its SHA-256 recorded. Needs node
and npm; nothing else in the project does (`make run` and `make test` use the committed files).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "trialsite" / "static" / "app" / "vendor"
MANIFEST = VENDOR / "VENDOR.json"


def npm(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["npm", *args], check=True, capture_output=True, text=True, cwd=cwd, timeout=300).stdout


def refresh(entry: dict, workdir: Path) -> dict:
    spec = f"{entry['package']}@{entry['range']}"
    info = json.loads(npm("view", spec, "name", "version", "license", "dist", "--json"))
    if isinstance(info, list):  # several versions match the range: npm lists them oldest first
        info = info[-1]
    version = info["version"]
    tarball_name = npm("pack", f"{entry['package']}@{version}", "--silent", cwd=workdir).strip().splitlines()[-1]
    tarball = workdir / tarball_name
    algo, _, expected = info["dist"]["integrity"].partition("-")
    actual = base64.b64encode(hashlib.new(algo, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{spec}: tarball integrity mismatch ({algo})")
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(f"package/{entry['source']}")
        if member is None:
            raise SystemExit(f"{spec}: {entry['source']} not in the package")
        data = member.read()
    (VENDOR / entry["file"]).write_bytes(data)
    return {
        **entry,
        "version": version,
        "license": info.get("license", ""),
        "tarball_integrity": info["dist"]["integrity"],
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def main() -> int:
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        manifest["libraries"] = [refresh(entry, Path(tmp)) for entry in manifest["libraries"]]
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for lib in manifest["libraries"]:
        print(f"{lib['package']} {lib['version']} ({lib['license']}) → vendor/{lib['file']} sha256 {lib['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
