"""Credentials in URLs never leave the process: ``https://user:SECRET@host/x.git`` is shown,
logged and stored as ``https://****@host/x.git``.

A source URL may carry a password or a token (``https://TOKEN@github.com/...``). It is needed
once, to clone; everywhere else (output, error messages, git's own messages, the checkpoint,
the lock's owner record that ``invoke status`` shows other users, reports, logs, the version
record) the redacted form is used. For http(s) the whole user part goes (a lone user name there
is usually a token); for other schemes (``ssh://git@host``) only a password.
"""

from __future__ import annotations

import re

_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s]+)@")
MASK = "****"


def _mask(m: re.Match[str]) -> str:
    scheme, userinfo = m.group(1), m.group(2)
    if scheme.lower().startswith("http"):
        return f"{scheme}{MASK}@"
    user, sep, _password = userinfo.partition(":")
    return f"{scheme}{user}{':' + MASK if sep else ''}@"


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it masked."""
    return _URL_USERINFO.sub(_mask, text) if "@" in text else text


def is_redacted(text: str) -> bool:
    return f"{MASK}@" in text or f":{MASK}@" in text
