"""The controller's side of source snapshots: pack a checkout's commit into one zip that
hosts read in place (the reader is :mod:`upgrade_tasks.snapshot`)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from .checkout import Checkout
from .fsutil import sha256_file
from .gitutil import CatFile, git
from .snapshot import BLOBS, META, SCHEMA


def make_snapshot(source: Checkout, out_dir: Path) -> Path:
    """Pack ``source`` (a git checkout) into ``out_dir/source-<commit>-s<schema>-<sha12>.zip``
    (reused when present). The name carries the format and the content hash, so a host that
    holds a file of that name holds these bytes, and a new format never meets an old file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"source-{source.commit}-s{SCHEMA}-"
    for old in sorted(out_dir.glob(prefix + "*.zip")):
        return old
    repo = source.root
    hist = source.history()
    ancestors = git(repo, "rev-list", source.commit).split()
    descendants = git(repo, "rev-list", "--all", "--ancestry-path",
                      f"{source.commit}..").split()
    meta: dict[str, Any] = {
        "schema": SCHEMA,
        "commit": source.commit,
        "branch": source.branch,
        "spec": source.spec,
        "files": {f.src: {"blob": f.blob, "mode": f.mode} for f in source.files.values()},
        "history": {
            "changes": [[c, ch] for c, ch in hist.changes],
            "versions": {p: sorted(v) for p, v in hist.versions.items()},
        },
        "ancestors": ancestors,
        "descendants": descendants,
    }
    tmp = out_dir / f"{prefix}.tmp-{os.getpid()}"
    reader = CatFile(repo)
    try:
        git(repo, "archive", "--format=zip", "-o", str(tmp.absolute()), source.commit)
        with zipfile.ZipFile(tmp, "a", zipfile.ZIP_DEFLATED) as out:
            out.writestr(META, json.dumps(meta, sort_keys=True))
            for blob in sorted({b for v in hist.versions.values() for b in v}):
                data = reader.read(blob)
                if data is not None:
                    out.writestr(f"{BLOBS}/{blob}", data)
        dest = out_dir / f"{prefix}{sha256_file(tmp)[:12]}.zip"
        os.replace(tmp, dest)
    finally:
        reader.close()
        if tmp.exists():
            tmp.unlink()
    return dest
