"""Feature tables: validation errors, exact CSV round trip, and the published release importer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from baselines.feature_table import (
    FeatureTableError,
    feature_columns,
    import_published_release,
    read_feature_table,
    write_feature_table,
)
from data_tools.names import CANONICAL_CLASSES

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_features.py"
WIDTH = 5  # values per line (170 in the real release)

# (river, part) -> [(file name, label index)]; as in the real release, "01-10x.jpg" recurs in two classes
# and "429.jpg" (Ep) names one grain in PengQu's train file and another in its val file.
RELEASE = {
    ("ChangJiang", "train"): [("01-10x.jpg", 0), ("01-10x.jpg", 11), ("02-10x.jpg", 4)],
    ("ChangJiang", "val"): [("03-10x.jpg", 4)],
    ("PengQu", "train"): [("429.jpg", 3), ("430.jpg", 8)],
    ("PengQu", "val"): [("431.jpg", 10), ("429.jpg", 3)],
    ("YaJiang", "train"): [("7.jpg", 9)],
    ("YaJiang", "val"): [("8.jpg", 9), ("9.jpg", 1)],
}


def write_release(directory: Path, seed: int = 0) -> dict[tuple[str, str, str], np.ndarray]:
    """Write the release in the published format; returns the values by (river, part/class/stem, pol)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[tuple[str, str, str], np.ndarray] = {}
    for (river, part), samples in RELEASE.items():
        for pol in ("cross", "plane"):
            lines = []
            for name, label in samples:
                values = rng.normal(size=WIDTH) * 10.0 ** rng.integers(-6, 4, size=WIDTH)
                written[(river, f"{part}/{CANONICAL_CLASSES[label]}/{Path(name).stem}", pol)] = values
                lines.append(f"{name}\t{label}\t{' '.join(repr(float(v)) for v in values)}")
            (directory / f"{river}_{part}_{pol}.txt").write_text("\n".join(lines) + "\n")
    return written


def rewrite_line(path: Path, index: int, field: int, value: str) -> None:
    lines = path.read_text().splitlines()
    fields = lines[index].split("\t")
    fields[field] = value
    lines[index] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")


def test_release_import_joins_pairs_and_round_trips_through_csv(tmp_path):
    written = write_release(tmp_path / "release")
    table = import_published_release(tmp_path / "release")
    assert len(table) == sum(len(s) for s in RELEASE.values()) == 11
    assert list(table.columns[:4]) == ["sample_id", "domain", "label", "split"]
    assert feature_columns(table) == [f"cross_f{i:03d}" for i in range(WIDTH)] + [
        f"plane_f{i:03d}" for i in range(WIDTH)
    ]
    assert list(table["domain"].unique()) == ["yangtze", "yarlung", "pengqu"]  # canonical order
    row = table.set_index("sample_id").loc["yangtze/train/Zrn/01-10x"]
    assert (row["label"], row["split"]) == ("Zrn", "train")
    assert table.set_index("sample_id").loc["yarlung/val/Ap/9", "split"] == "test"  # val -> test
    shared = table[table["sample_id"].str.endswith("/Ep/429")]  # one name, two grains
    assert list(shared["split"]) == ["train", "test"]
    river_of = {"yangtze": "ChangJiang", "pengqu": "PengQu", "yarlung": "YaJiang"}
    for record in table.itertuples(index=False):
        stem = record.sample_id.split("/", 1)[1]
        for pol in ("cross", "plane"):
            columns = [f"{pol}_f{i:03d}" for i in range(WIDTH)]
            stored = table.loc[table["sample_id"] == record.sample_id, columns].to_numpy()[0]
            np.testing.assert_array_equal(stored, written[(river_of[record.domain], stem, pol)])

    write_feature_table(table, tmp_path / "features.csv")
    back = read_feature_table(tmp_path / "features.csv")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    columns = feature_columns(table)
    assert back[columns].to_numpy().tobytes() == table[columns].to_numpy().tobytes()  # bit-exact floats


def test_release_rejects_cross_and_plane_that_disagree(tmp_path):
    write_release(tmp_path / "labels")
    rewrite_line(tmp_path / "labels" / "PengQu_train_plane.txt", 1, 1, "5")
    disagreement = r"'430\.jpg': label Rt in .*PengQu_train_cross\.txt.* but Mnz in"
    with pytest.raises(FeatureTableError, match=disagreement):
        import_published_release(tmp_path / "labels")

    write_release(tmp_path / "missing")
    path = tmp_path / "missing" / "YaJiang_val_cross.txt"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(FeatureTableError, match=r"9\.jpg only in YaJiang_val_plane\.txt"):
        import_published_release(tmp_path / "missing")


def test_release_problems_are_named(tmp_path):
    write_release(tmp_path / "extra")
    (tmp_path / "extra" / "notes.txt").write_text("hello")
    (tmp_path / "extra" / "PengQu_test_cross.txt").write_text("")
    with pytest.raises(FeatureTableError, match="PengQu_test_cross.txt, notes.txt"):
        import_published_release(tmp_path / "extra")

    write_release(tmp_path / "alone")
    (tmp_path / "alone" / "YaJiang_val_plane.txt").unlink()
    with pytest.raises(FeatureTableError, match="YaJiang_val_cross.txt has no YaJiang_val_plane.txt partner"):
        import_published_release(tmp_path / "alone")

    write_release(tmp_path / "label")
    rewrite_line(tmp_path / "label" / "ChangJiang_val_cross.txt", 0, 1, "12")
    with pytest.raises(FeatureTableError, match=r"ChangJiang_val_cross\.txt, line 1: label index 12"):
        import_published_release(tmp_path / "label")

    write_release(tmp_path / "short")
    rewrite_line(tmp_path / "short" / "PengQu_train_cross.txt", 1, 2, "1.0 2.0")
    with pytest.raises(FeatureTableError, match=r"PengQu_train_cross\.txt, line 2: 2 values"):
        import_published_release(tmp_path / "short")

    with pytest.raises(FileNotFoundError):
        import_published_release(tmp_path / "absent")


def test_release_refuses_one_grain_in_train_and_val(tmp_path):
    write_release(tmp_path / "copy")
    for pol in ("cross", "plane"):  # PengQu val's 429.jpg becomes a copy of train's
        train = (tmp_path / "copy" / f"PengQu_train_{pol}.txt").read_text().splitlines()
        rewrite_line(tmp_path / "copy" / f"PengQu_val_{pol}.txt", 1, 2, train[0].split("\t")[2])
    leak = r"identical feature values \(leakage\): '429' \(pengqu, Ep: PengQu_train_cross\.txt, line 1 and "
    with pytest.raises(FeatureTableError, match=leak + r"PengQu_val_cross\.txt, line 2\)"):
        import_published_release(tmp_path / "copy")


def test_release_refuses_non_utf8_and_non_finite_values_at_import(tmp_path):
    write_release(tmp_path / "latin1")
    path = tmp_path / "latin1" / "YaJiang_val_plane.txt"
    path.write_bytes(path.read_bytes().replace(b"9.jpg", "9\u00e9.jpg".encode("latin-1")))
    where = r"YaJiang_val_plane\.txt, line 2: not UTF-8 text \(byte 0xe9"
    with pytest.raises(FeatureTableError, match=where):
        import_published_release(tmp_path / "latin1")

    for text in ("nan", "inf", "-Infinity"):
        write_release(tmp_path / text)
        values = " ".join(["1.0", "2.0", text, "4.0", "5.0"])
        rewrite_line(tmp_path / text / "PengQu_train_plane.txt", 1, 2, values)
        where = rf"PengQu_train_plane\.txt, line 2 \(430\.jpg\): value 3 \(column plane_f002\) is '{text}'"
        with pytest.raises(FeatureTableError, match=where):
            import_published_release(tmp_path / text)


def good_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["a", "b", "c"],
            "domain": ["ChangJiang", "PumQu", "x"],
            "label": ["zircon", "Grt", "Grt"],
            "split": ["train", "val", "test"],
            "f1": [0.1, 0.2, 0.3],
            "f2": [1, 2, 3],
        }
    )


def test_read_feature_table_canonicalises_names(tmp_path):
    good_table().to_csv(tmp_path / "good.csv", index=False)
    table = read_feature_table(tmp_path / "good.csv")
    assert list(table["domain"]) == ["yangtze", "pengqu", "x"]
    assert list(table["label"]) == ["Zrn", "Grt", "Grt"]
    assert feature_columns(table) == ["f1", "f2"] and table["f2"].dtype == np.float64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="label"), "missing column.*label.*needs sample_id, domain, label"),
        (lambda t: t.drop(columns=["f1", "f2"]), "no feature columns"),
        (
            lambda t: t.assign(f1=["0.1", "oops", "0.3"]),
            "feature column 'f1' is not numeric.*'oops' in row 2",
        ),
        (lambda t: t.assign(f2=[1.0, np.nan, 3.0]), "feature column 'f2' has 1 missing.*sample b"),
        (lambda t: t.assign(sample_id=["a", "a", "c"]), "sample_id values repeat: a"),
        (lambda t: t.assign(split=["train", "holdout", "test"]), "unknown value.*holdout"),
        (lambda t: t.assign(domain=["r", "", "r"]), "column 'domain' is empty in 1 row"),
        (
            lambda t: t.assign(label=["Spl", "Spn", "Grt"]),
            r"distinct labels would become one class: Spl, Spn -> Spn",
        ),
        (lambda t: t.assign(label=["Cpx", "Opx", "Grt"]), r"Cpx, Opx -> Px"),
    ],
)
def test_malformed_feature_tables_are_named_errors(tmp_path, change, message):
    path = tmp_path / "bad.csv"
    change(good_table()).to_csv(path, index=False)
    with pytest.raises(FeatureTableError, match=message) as caught:
        read_feature_table(path)
    assert str(path) in str(caught.value)


def test_import_script_writes_a_table_or_exits_2(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("import_features", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    write_release(tmp_path / "release")
    assert script.main([str(tmp_path / "release"), "--out", str(tmp_path / "table.csv")]) == 0
    assert len(read_feature_table(tmp_path / "table.csv")) == 11
    (tmp_path / "release" / "PengQu_val_plane.txt").unlink()
    assert script.main([str(tmp_path / "release"), "--out", str(tmp_path / "other.csv")]) == 2
    assert "PengQu_val_cross.txt has no" in capsys.readouterr().err
    assert not (tmp_path / "other.csv").exists()
