#!/usr/bin/env python3
"""Build the (toy) search index for .praxis-os/standards (schema 2: with sizes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCHEMA = 2


def main() -> int:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".praxis-os")
    standards = base / "standards"
    docs = [
        {"path": str(p.relative_to(standards)), "bytes": p.stat().st_size}
        for p in sorted(standards.rglob("*.md"))
    ]
    out = base / ".cache" / "index.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"schema": SCHEMA, "documents": docs}), encoding="utf-8")
    tmp.replace(out)
    print(f"indexed {len(docs)} documents (schema {SCHEMA})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
