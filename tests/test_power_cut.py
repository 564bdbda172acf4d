"""A sample of the power-cut harness in every test run (all durable steps: ``nox -s crash``)."""

from __future__ import annotations

import power_cut


def test_power_cut_sample(capsys) -> None:  # type: ignore[no-untyped-def]
    assert power_cut.main(["--sample", "4", "--seed", "11"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["4", "4", "4", "0"], out
