"""scripts/benchmark_quantifiers.py: every quantifier timed, QuaPy's originals beside the faster ones."""

import pytest

pytest.importorskip("quapy")

from san.cli.quantifier_benchmark import main  # noqa: E402
from san.evaluation.quantifier_benchmark import format_timings, time_quantifiers  # noqa: E402
from san.evaluation.quantifier_names import QUANTIFIERS  # noqa: E402


def test_every_quantifier_is_timed_and_the_replacements_agree_with_quapy() -> None:
    timings = time_quantifiers(n_classes=4, calibration_rows=200, n_samples=3, sample_size=60, repeats=1)
    assert [t.name for t in timings if t.implementation == "project"] == list(QUANTIFIERS)
    originals = {t.name: t for t in timings if t.implementation == "quapy"}
    assert sorted(originals) == ["acc", "hdy", "pacc"]
    assert all(t.max_difference is not None and t.max_difference < 1e-4 for t in originals.values())
    assert all(t.ms_per_sample > 0 for t in timings)
    assert "ms per sample" in format_timings(timings).splitlines()[0]


@pytest.mark.parametrize("field", ["n_samples", "repeats", "sample_size", "calibration_rows"])
def test_counts_below_one_are_refused_by_name(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        time_quantifiers(**{field: 0})


def test_command_line_prints_the_table_and_refuses_a_bad_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--classes", "3", "--samples", "2", "--repeats", "1", "--calibration-rows", "90"]) == 0
    assert "hdy" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--samples", "0"])
    assert exit_info.value.code == 2
