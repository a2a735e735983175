"""The shared command-line vocabulary: every script answers --help without loading the heavy
libraries and --version from the package metadata; --data, --jobs, --device and the deprecated
aliases behave alike everywhere."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.commandline import (
    add_data_argument,
    add_jobs_argument,
    check_device_name,
    command_parser,
    log_to_file,
    package_version,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
HEAVY = ("torch", "torchvision", "sklearn", "pandas", "matplotlib", "scipy", "cv2", "wandb", "skimage")
# Runs one script's --help and --version in a fresh interpreter, then prints what they printed and
# which heavy modules got imported.
PROBE = """
import contextlib, io, json, runpy, sys
script, heavy = sys.argv[1], sys.argv[2].split(",")
outputs = []
for flag in ("--help", "--version"):
    sys.argv = [script, flag]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            runpy.run_path(script, run_name="__main__")
            code = None
        except SystemExit as exit:
            code = exit.code
    outputs.append({"code": code, "out": buffer.getvalue()})
print(json.dumps({"outputs": outputs, "loaded": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_loads_no_heavy_library_and_version_answers(script):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(script), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    helped, versioned = report["outputs"]
    assert helped["code"] in (0, None) and "usage:" in helped["out"], helped
    assert report["loaded"] == [], f"--help imported {report['loaded']}"
    assert versioned["code"] in (0, None)
    assert versioned["out"].strip() == f"{script.name} {package_version()}"


def test_the_version_comes_from_the_metadata_or_the_package(monkeypatch):
    import importlib.metadata

    import data_tools

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert package_version() == data_tools.__version__
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    assert package_version() == "9.9.9"


def _data_parser(**kwargs):
    parser = command_parser("demo.py", "demo")
    add_data_argument(parser, "the data", **kwargs)
    parser.add_argument("rest", nargs="?")
    return parser


def test_data_positional_is_an_alias_of_the_flag(capsys):
    parser = _data_parser(positional="ROOT", required=True)
    assert parser.parse_args(["tree"]).data == "tree"
    assert parser.parse_args(["--data", "tree"]).data == "tree"
    assert parser.parse_args(["--data", "tree", "tree"]).data == "tree"  # the same twice is fine
    assert not hasattr(parser.parse_args(["tree"]), "data_positional")
    for argv, message in (([], "the data are required: --data"), (["a", "--data", "b"], "given twice")):
        with pytest.raises(SystemExit) as exit:
            parser.parse_args(argv)
        assert exit.value.code == 2 and message in capsys.readouterr().err


def test_deprecated_aliases_still_work_and_say_so(capsys):
    parser = command_parser("demo.py", "demo")
    add_jobs_argument(parser, "workers")
    assert parser.parse_args([]).jobs == 1
    assert parser.parse_args(["--jobs", "3"]).jobs == 3 and capsys.readouterr().err == ""
    assert parser.parse_args(["--workers", "2"]).jobs == 2
    warning = capsys.readouterr().err
    assert "--workers is deprecated" in warning and "use --jobs" in warning
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "0"])
    assert "at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps", " CUDA:1 "])
def test_device_names_accepted(name):
    assert check_device_name(name) == name.strip().lower()


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cuda1", "tpu", ""])
def test_device_names_refused_with_the_value_named(name):
    with pytest.raises(ValueError, match=f"got {name!r}"):
        check_device_name(name)


def test_resolve_device_names_what_this_machine_lacks():
    torch = pytest.importorskip("torch")
    from san.runtime import DeviceError, resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="'gpu'"):
        resolve_device("gpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(DeviceError, match=f"cuda:{count + 3}"):
        resolve_device(f"cuda:{count + 3}")


def test_bad_device_is_a_usage_error_of_every_run_command(capsys):
    from san.cli.train import train_san_main

    with pytest.raises(SystemExit) as exit:
        train_san_main(["--device", "gpu"])
    assert exit.value.code == 2 and "'gpu'" in capsys.readouterr().err


def test_train_san_method_flag_and_its_deprecated_alias(capsys):
    from san.cli.train import make_san_parser

    parser = make_san_parser()
    assert parser.parse_args([]).method == "san"
    assert parser.parse_args(["--method", "erm"]).method == "erm"
    assert parser.parse_args(["--algorithm", "erm"]).method == "erm"
    assert "--algorithm is deprecated" in capsys.readouterr().err
    args = parser.parse_args(["--protocol", "cross"])
    assert args.protocol == "cross"  # resolved to loro by the protocol resolver (see test_protocols)
    json.dumps(vars(args))


def test_the_run_log_file_gets_the_console_lines_in_the_console_format(tmp_path, monkeypatch, capsys):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(console)
    with log_to_file(tmp_path / "train.log"):
        logging.getLogger("san.demo").info("inside")
    logging.getLogger("san.demo").info("after")
    assert (tmp_path / "train.log").read_text() == "INFO san.demo inside\n"
    assert capsys.readouterr().err == "INFO san.demo inside\nINFO san.demo after\n"
    assert root.handlers == [console]


def test_without_logging_set_up_warnings_still_reach_the_console(tmp_path, monkeypatch, capsys):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    with log_to_file(tmp_path / "train.log"):
        logging.getLogger("san.demo").warning("careful")
        logging.getLogger("san.demo").info("not shown")
    assert capsys.readouterr().err == "careful\n"
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING san.demo: careful")
    assert root.handlers == []


def test_a_file_system_error_is_one_line_naming_the_path_and_what_must_be_writable(capsys):
    from san.cli.common import report_error

    assert report_error(PermissionError(13, "Permission denied", "/read-only/runs")) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Permission denied: /read-only/runs" in error
    assert "--out" in error and "must be writable" in error
    assert report_error(FileNotFoundError(2, "No such file or directory", "/no/data")) == 1
    assert "must be writable" not in capsys.readouterr().err  # a missing input is not a write problem
