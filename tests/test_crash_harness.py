"""A sample of the crash-injection harness in every test run (the full set: ``nox -s crash``)."""

from __future__ import annotations

import crash_harness


def test_crash_harness_sample(capsys) -> None:  # type: ignore[no-untyped-def]
    assert crash_harness.main(["--sample", "6", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:4]}
    assert set(rows) == {"upgrade", "failure", "rollback"}
    assert all(int(r[3]) > 0 and r[-1] == "0" for r in rows.values()), out
    assert "total failures: 0" in out
