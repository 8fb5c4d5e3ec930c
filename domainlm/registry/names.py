"""Names that become folders in the store: a vertical is a short slug, a version a positive integer.

Anything else (`..`, `/`, spaces, unicode look-alikes, leading dots) is refused before it reaches a path, so a name
can never point outside `<root>/`.
"""

from __future__ import annotations

import re

from domainlm.errors import DomainlmError

VERTICAL_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")  # same rule as domainlm/verticals/spec.py NAME: a safe folder


class RegistryError(DomainlmError):
    """A registry operation cannot be done as asked (unknown version, gate not met, bad name, ...)."""


class NotFound(RegistryError):
    """The vertical or version asked for is not in the registry."""


def check_vertical(name: object) -> str:
    if not isinstance(name, str) or not VERTICAL_RE.fullmatch(name):
        raise RegistryError(f"invalid vertical name {name!r}: use a lower-case slug such as 'medical' "
                            "(2-32 characters of a-z, 0-9 and '_', starting with a letter)")
    return name


def check_version(version: object) -> int:
    if isinstance(version, bool):
        raise RegistryError(f"invalid version {version!r}: a positive integer is expected")
    if isinstance(version, str) and version.isascii() and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or version < 1 or version > 10**9:
        raise RegistryError(f"invalid version {version!r}: a positive integer is expected")
    return version


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'medical' → ('medical', None); 'medical@3' → ('medical', 3). Raises RegistryError on anything else."""
    vertical, sep, version = str(ref).partition("@")
    return check_vertical(vertical), (check_version(version) if sep else None)
