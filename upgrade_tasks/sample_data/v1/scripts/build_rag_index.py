#!/usr/bin/env python3
"""Build the (toy) search index for .praxis-os/standards."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".praxis-os")
    standards = base / "standards"
    docs = sorted(str(p.relative_to(standards)) for p in standards.rglob("*.md"))
    out = base / ".cache" / "index.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"documents": docs}), encoding="utf-8")
    print(f"indexed {len(docs)} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
