"""Run every benchmark and print its table: ``python -m benchmarks.run``."""

from __future__ import annotations

import sys

from benchmarks import classify


def main() -> int:
    print("== classification (issue 3) ==", flush=True)
    return classify.main()


if __name__ == "__main__":
    sys.exit(main())
