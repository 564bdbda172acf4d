"""A sample of the crash-injection harness in every test run (the full set: ``nox -s crash``)."""

from __future__ import annotations

import crash_harness


def test_crash_harness_sample(capsys) -> None:  # type: ignore[no-untyped-def]
    assert crash_harness.main(["--sample", "10", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "points tried" in out and out.splitlines()[2].split()[-1] == "0"
