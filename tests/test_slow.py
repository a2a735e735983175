"""Long end-to-end checks, excluded by default (run with ``pytest -m slow``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from san.cli.train import train_san_main


@pytest.mark.slow
def test_main_job_generates_the_synthetic_set_and_trains_on_it(tmp_path, capsys):
    """The README's main job with no --data: the full synthetic set is generated into the (fresh,
    temporary) cache, then SAN trains on two rivers and is evaluated on the third."""
    out = tmp_path / "runs"
    code = train_san_main(
        [
            "--domains",
            "yarlung,pengqu",
            "--out",
            str(out),
            "--set",
            "epochs=1",
            "--wandb",
            "disabled",
            "--quiet",
        ]
    )
    assert code == 0
    (line,) = (out / "results.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["data"]["synthetic"] is True and record["data"]["n_pairs"] == 1654
    assert record["targets"] == ["yangtze"] and record["metrics"]["target"]["n"] == 365
    assert Path(record["data"]["root"], "dataset.json").is_file()
    assert "target yangtze" in " ".join(capsys.readouterr().out.split())
