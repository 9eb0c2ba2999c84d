"""Loading protocol files: validate, store an immutable version, let each app materialise its part.

Apps register a loader (in their AppConfig.ready) that turns the validated protocol into their own rows
(consent documents and arms in participants, instruments in surveys). Loaders run in the same
transaction as the new ProtocolVersion: a failure anywhere changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from pydantic import ValidationError as PydanticValidationError

from trialsite.models import ProtocolVersion, Site, Trial

from .schema import Protocol


class ProtocolError(Exception):
    """A protocol file that cannot be loaded. `problems` lists "path: message" lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class LoadResult:
    trial: Trial
    version: ProtocolVersion
    created: bool  # False when the same protocol was loaded again (nothing changed)
    amended: bool  # True when this version amends an earlier one


LoaderFn = Callable[..., None]
_loaders: list[tuple[str, LoaderFn]] = []


def register_protocol_loader(name: str, fn: LoaderFn) -> None:
    """fn(*, trial, version, protocol, previous, now) runs inside the loading transaction (`now`: the load's
    clock, None for the wall clock; re-planning after an amendment uses it).

    Loaders must be idempotent: they also run when an unchanged protocol is loaded again (previous=None).
    """
    if name not in {n for n, _ in _loaders}:
        _loaders.append((name, fn))


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def protocol_parse(source: str) -> Protocol:
    """YAML text → validated Protocol, or ProtocolError naming every problem's place in the file."""
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        raise ProtocolError([f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from exc
    if not isinstance(data, dict):
        raise ProtocolError(["(top level): the file must be a mapping of protocol sections"])
    try:
        return Protocol.model_validate(data)
    except PydanticValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _loc(err["loc"]) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise ProtocolError(problems) from exc


def protocol_digest(protocol: Protocol) -> str:
    canonical = json.dumps(protocol.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@transaction.atomic
def protocol_load(*, source: str, source_path: str = "", user=None, now=None) -> LoadResult:
    """Create the trial or amend it. The same content again changes nothing; history is never rewritten."""
    protocol = protocol_parse(source)
    digest = protocol_digest(protocol)
    trial, _ = Trial.objects.select_for_update().get_or_create(
        slug=protocol.trial.slug, defaults={"title": protocol.trial.title}
    )
    # Lock the trial row so two concurrent loads cannot both take the next version number.
    trial = Trial.objects.select_for_update().get(pk=trial.pk)
    existing = trial.protocol_versions.filter(sha256=digest).first()
    latest = trial.protocol_versions.order_by("-version").first()
    if existing is not None:
        # Same content: no new version. Loaders are idempotent, so running them again only fills in what an
        # app installed after that version was loaded has never materialised (e.g. a new app's rows).
        for _name, loader in _loaders:
            loader(trial=trial, version=existing, protocol=protocol, previous=None, now=now)
        return LoadResult(trial=trial, version=existing, created=False, amended=False)
    if trial.title != protocol.trial.title:
        trial.title = protocol.trial.title
        trial.save(update_fields=["title"])
    version = ProtocolVersion(
        trial=trial,
        version=(latest.version + 1) if latest else 1,
        sha256=digest,
        source=source,
        definition=protocol.model_dump(mode="json"),
        source_path=source_path,
        loaded_by=user if getattr(user, "is_authenticated", False) else None,
    )
    version.full_clean()
    version.save()
    trial.current_version = version  # under the row lock taken above: the pointer follows the latest version
    trial.save(update_fields=["current_version"])
    for site_def in protocol.sites:
        site, _ = Site.objects.get_or_create(
            code=site_def.code, defaults={"name": site_def.name, "timezone": site_def.timezone}
        )
        trial.sites.add(site)
    previous = protocol_of_version(latest) if latest else None
    for _name, loader in _loaders:
        loader(trial=trial, version=version, protocol=protocol, previous=previous, now=now)
    return LoadResult(trial=trial, version=version, created=True, amended=latest is not None)


def protocol_load_file(*, path: str | Path, user=None) -> LoadResult:
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolError([f"{path}: cannot read the file ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError([f"{path}: the file is not UTF-8 text"]) from exc
    return protocol_load(source=source, source_path=str(path), user=user)


# --- the current protocol: one definition, parsed once per version -------------------------------------------
# A ProtocolVersion is immutable once written (an amendment is a new row), so its parse is kept per process. The
# key is the row's pk, but a pk alone can be fooled: `flush` (and any sequence reset) hands the same pk to another
# row. So each entry remembers the content digest (`sha256`, a digest of `definition`) it was parsed from:
# - a row with its sha256 loaded (protocol_version_current's) is checked against it: a reused pk is re-parsed,
#   whoever wrote the row and whenever (no query: the row carries its digest);
# - a bare pk (`instance.protocol_version_id`, `trial.current_version_id`: the hot paths, no query) is trusted, and
#   every write or delete of a ProtocolVersion through the ORM in this process drops that pk's entry (signals
#   below), so the next protocol_load after a `flush` is never answered with the old row's protocol.
# Only the "which version is current" lookup (one indexed query) runs per call, so an amendment is seen at once.
_parsed: dict[int, tuple[str | None, Protocol]] = {}  # pk → (sha256 of the row parsed, its Protocol)
_PARSED_MAX = 64  # versions kept per process (a deployment has a handful; the bound only guards a runaway loop)


def protocol_of_version(version: ProtocolVersion | int) -> Protocol:
    """The validated Protocol of one version (a row, or its pk). Shared: callers must not mutate it."""
    if isinstance(version, int):
        pk, digest = version, None
    else:
        pk, digest = version.pk, version.__dict__.get("sha256")  # None when deferred: trusted like a bare pk
    cached = _parsed.get(pk)
    if cached is not None and (digest is None or cached[0] == digest):
        return cached[1]
    if isinstance(version, int) or "definition" in version.get_deferred_fields():
        digest, definition = ProtocolVersion.objects.values_list("sha256", "definition").get(pk=pk)
    else:
        definition = version.definition
    protocol = Protocol.model_validate(definition)
    _parsed.pop(pk, None)
    if len(_parsed) >= _PARSED_MAX:
        _parsed.pop(next(iter(_parsed)))
    _parsed[pk] = (digest, protocol)
    return protocol


def protocol_cache_clear() -> None:
    _parsed.clear()


def _forget_version(sender, instance, **kwargs) -> None:
    """A ProtocolVersion written or deleted in this process: whatever was parsed under its pk is not its protocol."""
    _parsed.pop(instance.pk, None)


post_save.connect(_forget_version, sender=ProtocolVersion, dispatch_uid="trialsite.protocol.forget_version_saved")
post_delete.connect(_forget_version, sender=ProtocolVersion, dispatch_uid="trialsite.protocol.forget_version_deleted")


def protocol_version_current(trial: Trial | int) -> ProtocolVersion:
    """The trial's latest ProtocolVersion row (only pk, version, sha256 loaded), or ProtocolError if none."""
    trial_id = trial if isinstance(trial, int) else trial.pk
    row = (
        ProtocolVersion.objects.filter(trial_id=trial_id)
        .order_by("-version")
        .only("pk", "trial_id", "version", "sha256")
        .first()
    )
    if row is None:
        name = trial if isinstance(trial, int) else repr(trial.slug)
        raise ProtocolError([f"trial {name} has no protocol loaded"])
    return row


def protocol_current(trial: Trial | int) -> Protocol:
    """The validated protocol of the trial's latest version: one small query, no parsing after the first call."""
    return protocol_of_version(protocol_version_current(trial))


def protocol_current_of(trial: Trial) -> Protocol:
    """The validated protocol of a trial row read in this request (e.g. with the phone's bearer token): its
    `current_version` pointer, which protocol_load moves in the transaction that adds a version, so no query once
    the version is parsed. A row read before an amendment names the version current when it was read: pass an id
    to protocol_current for a fresh answer."""
    if trial.current_version_id is None:
        return protocol_current(trial)  # nothing loaded yet (or a row from before the pointer): ProtocolError
    return protocol_of_version(trial.current_version_id)
