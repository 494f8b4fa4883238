"""`PARLOUR_*` environment variables that name no setting: refused with the closest valid key."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from app.config import OIDCProviderSettings, Settings

PREFIX = "PARLOUR_"
SEP = "__"


def _is_dict(annotation: Any) -> bool:
    return annotation is dict or get_origin(annotation) is dict


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def valid_names() -> tuple[set[str], set[str]]:
    """(exact variable names, prefixes under which any name is a key of a table)."""
    exact: set[str] = set()
    open_prefixes: set[str] = set()
    for name, field in Settings.model_fields.items():
        top = PREFIX + name.upper()
        exact.add(top)  # a whole section as JSON works too
        section = _model(field.annotation)
        if section is not None:
            for key, sub in section.model_fields.items():
                exact.add(f"{top}{SEP}{key.upper()}")
                if _is_dict(sub.annotation):
                    open_prefixes.add(f"{top}{SEP}{key.upper()}{SEP}")
        elif _is_dict(field.annotation) and _model(get_args(field.annotation)[-1]) is not None:
            # Tables of sections, e.g. PARLOUR_OIDC__<NAME>__CLIENT_SECRET: checked below.
            open_prefixes.add(f"{top}{SEP}")
    return exact, open_prefixes


def _oidc_key_ok(name: str) -> bool:
    """PARLOUR_OIDC__<NAME>[__<KEY>] with KEY a provider setting."""
    rest = name[len(f"{PREFIX}OIDC{SEP}"):]
    parts = rest.split(SEP)
    if len(parts) == 1:
        return bool(parts[0])
    return len(parts) == 2 and parts[1].lower() in OIDCProviderSettings.model_fields


def _closest(name: str, candidates: list[str]) -> str | None:
    """The valid name most like `name`, compared without the shared PARLOUR_ prefix."""
    pool = list(candidates)
    oidc = f"{PREFIX}OIDC{SEP}"
    if name.startswith(oidc) and SEP in name[len(oidc):]:
        provider = name[len(oidc):].split(SEP)[0]
        pool += [f"{oidc}{provider}{SEP}{key.upper()}" for key in OIDCProviderSettings.model_fields]
    bare = {c[len(PREFIX):]: c for c in pool}
    close = difflib.get_close_matches(name[len(PREFIX):], list(bare), n=1, cutoff=0.6)
    return bare[close[0]] if close else None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One sentence per `PARLOUR_*` variable that sets nothing, naming the closest valid one."""
    exact, open_prefixes = valid_names()
    candidates = sorted(exact)
    problems = []
    for raw in sorted(environ):
        name = raw.upper()
        if not name.startswith(PREFIX) or name in exact:
            continue
        prefix = next((p for p in open_prefixes if name.startswith(p)), None)
        if prefix == f"{PREFIX}OIDC{SEP}":
            if _oidc_key_ok(name):
                continue
        elif prefix is not None:
            continue
        close = _closest(name, candidates)
        hint = f"; did you mean {close}?" if close else (
            f"; settings are {PREFIX}<SECTION>{SEP}<KEY>, e.g. {PREFIX}LIMITS{SEP}MAX_UPLOAD_MB"
        )
        problems.append(f"unknown environment variable {raw}: it sets nothing{hint}")
    return problems


def env_name(key: str) -> str:
    """The environment variable of a dotted setting key (`limits.max_upload_mb`)."""
    return PREFIX + key.replace(".", SEP).upper()
