"""String-valued enums: they compare, format and serialise (JSON) as their value.

Statuses and actions are written to checkpoints and reports as plain strings and read back
from them; a ``str`` mixin keeps those files unchanged while the code gets a closed set of
names. (``enum.StrEnum`` is Python 3.11+; hosts may run 3.9.)
"""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    def __hash__(self) -> int:  # as the plain string (Python 3.9's Enum hashes the name)
        return str.__hash__(self)
