"""Run every benchmark and print its table: ``python -m benchmarks.run``."""

from __future__ import annotations

import sys

from benchmarks import classify, fleet, projects, restart, upgrade


def main() -> int:
    print("== classification (issue 3) ==", flush=True)
    rc = classify.main()
    print("\n== server restart (issue 4, NFR-P5) ==", flush=True)
    rc |= restart.main()
    print("\n== upgrade vs baselines (issue 6) ==", flush=True)
    rc |= upgrade.main()
    print("\n== fleet over SSH (issue 5) ==", flush=True)
    rc |= fleet.main()
    print("\n== many projects at once (issue 15) ==", flush=True)
    rc |= projects.main([])
    return rc


if __name__ == "__main__":
    sys.exit(main())
