"""Manifest building and validation on small trees written by the tests."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_tools.class_map import ClassMapError, read_class_map
from data_tools.images import ImageDecodeError, load_rgb
from data_tools.layout import LayoutError, compile_layout
from data_tools.manifest import FolderMergeError, build_manifest, count_table, manifest_hash
from data_tools.manifest_cli import main as build_manifest_main
from data_tools.manifest_io import ManifestError, load_dataset, read_manifest

DEFAULT = "{domain}/{pol}/{label}/{name}"


def kinds(result) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for problem in result.problems:
        found.setdefault(problem.kind, set()).add(problem.path)
    return found


def test_default_layout_pairs_and_canonical_names(tmp_path, write_pair_tree):
    write_pair_tree(
        tmp_path,
        DEFAULT,
        {"ChangJiang": {"zircon": 2, "Grt": 3}, "PumQu": {"Zircon": 1}},
        pols=("PPL", "XPL"),
    )
    result = build_manifest(tmp_path, progress=False)
    manifest = result.manifest
    assert result.layout == DEFAULT and result.problems == []
    assert len(manifest) == 6
    assert set(manifest["domain"]) == {"yangtze", "pengqu"}
    assert set(manifest["label"]) == {"Zrn", "Grt"}
    assert manifest["plane_path"].str.contains("/PPL/").all()
    assert manifest["cross_path"].str.contains("/XPL/").all()
    assert list(count_table(manifest).columns) == ["Grt", "Zrn", "total"]  # canonical order
    assert count_table(manifest).loc["total", "total"] == 6
    mapped = {(r.kind, r.folder): (r.name, r.how, r.images) for r in result.folder_names.itertuples()}
    assert mapped == {
        ("domain", "ChangJiang"): ("yangtze", "alias", 10),
        ("domain", "PumQu"): ("pengqu", "alias", 2),
        ("class", "Grt"): ("Grt", "canonical", 6),
        ("class", "zircon"): ("Zrn", "alias", 4),
        ("class", "Zircon"): ("Zrn", "alias", 2),  # the same name in another case: not a merge
    }


def test_split_layout_is_detected_and_kept(tmp_path, write_pair_tree):
    write_pair_tree(tmp_path, "{domain}/{split}/{pol}/{label}/{name}", {"YaJiang": {"Ap": 2}}, split="train")
    write_pair_tree(
        tmp_path, "{domain}/{split}/{pol}/{label}/{name}", {"YaJiang": {"Ap": 1}}, split="val", seed=1
    )
    result = build_manifest(tmp_path, progress=False)
    assert result.layout == "{domain}/{split}/{pol}/{label}/{name}"
    assert sorted(result.manifest["split"]) == ["train", "train", "val"]
    assert result.manifest["sample_id"].is_unique


def test_custom_template_with_literal_text_and_domain(tmp_path, write_pair_tree):
    write_pair_tree(
        tmp_path, "{label}Data/{pol}/{name}", {"x": {"quartz": 2, "feldspar": 1}}, pols=("single", "cross_1")
    )
    result = build_manifest(tmp_path, layout="{label}Data/{pol}/{name}", domain="sandstone", progress=False)
    assert result.problems == []
    assert set(result.manifest["label"]) == {"quartz", "feldspar"}
    assert set(result.manifest["domain"]) == {"sandstone"}


def test_mixed_formats_odd_sizes_corrupt_unpaired_and_non_images(tmp_path, write_image):
    root = tmp_path
    write_image(root / "yarlung/plane/Rt/a.jpg", 1, size=(31, 17))
    write_image(root / "yarlung/cross/Rt/a.jpg", 2, size=(31, 17))
    write_image(root / "yarlung/plane/Rt/b.png", 3, size=(9, 40))
    write_image(root / "yarlung/cross/Rt/b.png", 4, size=(10, 40))  # size mismatch: warning only
    write_image(root / "yarlung/plane/Rt/c.png", 5)
    (root / "yarlung/cross/Rt/c.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # corrupt
    write_image(root / "yarlung/plane/Rt/lonely.png", 6)  # unpaired
    (root / "yarlung/plane/Rt/empty.jpg").write_bytes(b"")
    (root / "yarlung/cross/Rt/empty.jpg").write_bytes(b"")
    full = write_image(root / "yarlung/plane/Rt/cut.jpg", 7, size=(64, 64))
    write_image(root / "yarlung/cross/Rt/cut.jpg", 8, size=(64, 64))
    full.write_bytes(full.read_bytes()[:200])  # truncated JPEG
    (root / "yarlung/notes.txt").write_text("not an image")
    write_image(root / "yarlung/weird/Rt/d.png", 9)  # unknown polarization folder

    result = build_manifest(root, progress=False)
    found = kinds(result)
    assert list(result.manifest["sample_id"]) == ["yarlung/Rt/a", "yarlung/Rt/b"]
    assert found["size_mismatch"] == {"yarlung/plane/Rt/b.png"}
    assert found["unpaired"] == {"yarlung/plane/Rt/lonely.png"}
    assert found["unknown_polarization"] == {"yarlung/weird/Rt/d.png"}
    assert found["unreadable"] == {
        "yarlung/cross/Rt/c.png",
        "yarlung/plane/Rt/empty.jpg",
        "yarlung/cross/Rt/empty.jpg",
        "yarlung/plane/Rt/cut.jpg",
    }
    assert any("0 bytes" in p.message for p in result.errors if p.path.endswith("empty.jpg"))
    assert result.skipped_non_images == 1
    assert {p.kind for p in result.warnings} == {"size_mismatch"}


def test_byte_identical_images_across_labels_are_leakage(tmp_path, write_image):
    write_image(tmp_path / "pengqu/plane/Zrn/a.png", 1)
    write_image(tmp_path / "pengqu/cross/Zrn/a.png", 2)
    write_image(tmp_path / "pengqu/plane/Ap/b.png", 1)  # same bytes as Zrn/a's PPL
    write_image(tmp_path / "pengqu/cross/Ap/b.png", 3)
    write_image(tmp_path / "pengqu/plane/Ap/c.png", 4)
    write_image(tmp_path / "pengqu/cross/Ap/c.png", 5)
    result = build_manifest(tmp_path, progress=False)
    assert kinds(result)["leakage"] == {"pengqu/plane/Zrn/a.png", "pengqu/plane/Ap/b.png"}
    assert list(result.manifest["sample_id"]) == ["pengqu/Ap/c"]


def test_layout_errors_are_explained(tmp_path, write_pair_tree):
    with pytest.raises(LayoutError, match="unknown field"):
        compile_layout("{river}/{pol}/{name}")
    with pytest.raises(LayoutError, match="last component"):
        compile_layout("{name}/{pol}")
    write_pair_tree(tmp_path, "{label}Data/{pol}/{name}", {"x": {"quartz": 1}})
    with pytest.raises(LayoutError, match="--layout"):
        build_manifest(tmp_path, progress=False)
    with pytest.raises(LayoutError, match="--domain"):
        build_manifest(tmp_path, layout="{label}Data/{pol}/{name}", progress=False)


def test_cli_exit_codes_and_outputs(tmp_path, write_pair_tree, write_image, capsys):
    clean = tmp_path / "clean"
    write_pair_tree(clean, DEFAULT, {"yangtze": {"Ap": 2}})
    assert build_manifest_main([str(clean), "--quiet"]) == 0
    assert len(pd.read_csv(clean / "manifest.csv")) == 2

    dirty = tmp_path / "dirty"
    write_pair_tree(dirty, DEFAULT, {"yangtze": {"Ap": 2}})
    write_image(dirty / "yangtze/plane/Ap/orphan.png", 99)
    out = tmp_path / "out" / "m.csv"
    assert build_manifest_main([str(dirty), "--out", str(out), "--quiet"]) == 1
    assert "orphan.png" in capsys.readouterr().out
    assert not out.exists()
    assert build_manifest_main([str(dirty), "--out", str(out), "--allow-problems", "--quiet"]) == 0
    problems = pd.read_csv(out.with_name("m.problems.csv"))
    assert list(problems["kind"]) == ["unpaired"]
    # Paths in a CSV written elsewhere are relative to the CSV, so the dataset still opens.
    dataset = read_manifest(out)
    assert all(dataset.path(p).is_file() for p in dataset.manifest["plane_path"])

    assert build_manifest_main([str(tmp_path / "missing"), "--quiet"]) == 2
    assert build_manifest_main([str(clean), "--layout", "{bad}/{name}", "--quiet"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        build_manifest_main(["--no-such-flag"])
    assert exit_info.value.code == 2


def test_load_dataset_refuses_a_tree_with_errors(tmp_path, write_pair_tree, write_image):
    write_pair_tree(tmp_path, DEFAULT, {"yangtze": {"Ap": 1}})
    write_image(tmp_path / "yangtze/cross/Ap/orphan.png", 5)
    with pytest.raises(ManifestError, match="orphan.png"):
        load_dataset(tmp_path, progress=False)


def test_manifest_hash_follows_content(tmp_path, write_pair_tree, write_image):
    write_pair_tree(tmp_path, DEFAULT, {"yangtze": {"Ap": 2}})
    before = manifest_hash(build_manifest(tmp_path, progress=False).manifest)
    assert before == manifest_hash(build_manifest(tmp_path, progress=False).manifest)
    write_image(tmp_path / "yangtze/plane/Ap/Ap_000.png", 1234)
    assert before != manifest_hash(build_manifest(tmp_path, progress=False).manifest)


def test_real_sandstone_pairs(sandstone_root: Path):
    result = build_manifest(
        sandstone_root, layout="{label}Data/{pol}/{name}", domain="sandstone", progress=False
    )
    assert result.errors == []
    assert len(result.manifest) == 210
    assert result.manifest.groupby("label").size().to_dict() == {
        "feldspar": 79,
        "quartz": 81,
        "rockchips": 50,
    }


def write_manifest_csv(path: Path, **changes: list) -> Path:
    """A three-row manifest CSV with some columns replaced (the files need not exist to be read)."""
    table = pd.DataFrame(
        {
            "sample_id": ["r/A/a", "r/A/b", "r/B/c"],
            "domain": ["r", "r", "r"],
            "label": ["A", "A", "B"],
            "plane_path": ["r/plane/A/a.png", "r/plane/A/b.png", "r/plane/B/c.png"],
            "cross_path": ["r/cross/A/a.png", "r/cross/A/b.png", "r/cross/B/c.png"],
            "plane_sha1": ["0" * 40, "1" * 40, "2" * 40],
            "plane_width": [24, 24, 24],
            "split": ["train", "val", "test"],
        }
    )
    table.assign(**changes).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"domain": ["r", "", "r"]}, r"row 2, column 'domain' is empty; expected a domain"),
        ({"label": ["A", "A", " "]}, r"row 3, column 'label' is empty; expected a class name"),
        ({"cross_path": ["", "x.png", "y.png"]}, r"row 1, column 'cross_path' is empty"),
        ({"sample_id": ["a", None, "c"]}, r"row 2, column 'sample_id' is empty"),
        ({"plane_width": [24, "wide", 0]}, r"row 2, column 'plane_width' is 'wide'; expected a positive"),
        (
            {"plane_sha1": ["abc", "1" * 40, "2" * 40]},
            r"row 1, column 'plane_sha1' is 'abc'; expected a 40-hex",
        ),
        ({"split": ["train", "holdout", "test"]}, r"row 2, column 'split' is 'holdout'; expected train, val"),
    ],
)
def test_read_manifest_names_every_bad_cell(tmp_path, changes, expected):
    path = write_manifest_csv(tmp_path / "m.csv", **changes)
    with pytest.raises(ManifestError, match=expected) as caught:
        read_manifest(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_read_manifest_lists_several_bad_cells_and_canonicalises(tmp_path):
    path = write_manifest_csv(tmp_path / "m.csv", domain=["", "", "r"], label=["A", None, "B"])
    with pytest.raises(ManifestError, match=r"3 bad cell\(s\)") as caught:
        read_manifest(path)
    assert "row 2, column 'domain'" in str(caught.value) and "row 2, column 'label'" in str(caught.value)
    good = read_manifest(write_manifest_csv(tmp_path / "good.csv", split=["Training", "valid", "test"]))
    assert list(good.manifest["split"]) == ["train", "val", "test"]
    assert good.manifest["plane_width"].dtype.kind == "i"
    (tmp_path / "latin1.csv").write_bytes("sample_id,domain\n\xe9,x\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="not a readable CSV"):
        read_manifest(tmp_path / "latin1.csv")


def test_bad_manifest_cell_is_a_usage_error_before_training(tmp_path, capsys):
    from san.cli.train import train_baseline_main

    path = write_manifest_csv(tmp_path / "m.csv", label=["A", "A", ""])
    code = train_baseline_main(["--method", "svm", "--data", str(path), "--out", str(tmp_path / "runs")])
    assert code == 1 and "row 3, column 'label' is empty" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_tiff_with_non_finite_pixels_is_named(tmp_path, write_image, bad):
    values = np.linspace(0.0, 1.0, 20 * 24, dtype=np.float32).reshape(20, 24)
    values[3, 5] = bad
    path = tmp_path / "r/plane/A/a.tif"
    path.parent.mkdir(parents=True)
    Image.fromarray(values, mode="F").save(path)
    write_image(tmp_path / "r/cross/A/a.tif", 1)
    with pytest.raises(ImageDecodeError, match=r"a\.tif: 1 of 480 pixel value\(s\) are NaN or infinite"):
        load_rgb(path)
    result = build_manifest(tmp_path, progress=False)
    assert result.manifest.empty
    assert [(p.kind, p.path) for p in result.errors] == [("unreadable", "r/plane/A/a.tif")]
    values[3, 5] = 0.5
    Image.fromarray(values, mode="F").save(path)
    assert load_rgb(path).max() == 255  # a finite float image still spans the range


def test_symlinked_river_folders_are_followed_and_loops_are_not(tmp_path, write_pair_tree):
    root, elsewhere = tmp_path / "tree", tmp_path / "disk2"
    write_pair_tree(root, DEFAULT, {"pengqu": {"Zrn": 2}})
    write_pair_tree(elsewhere, DEFAULT, {"yarlung": {"Ap": 3}}, seed=1)
    (root / "yarlung").symlink_to(elsewhere / "yarlung", target_is_directory=True)
    (root / "pengqu/plane/Zrn/again").symlink_to(root / "pengqu", target_is_directory=True)
    result = build_manifest(root, progress=False)
    assert result.manifest.groupby("domain").size().to_dict() == {"yarlung": 3, "pengqu": 2}
    assert [(p.severity, p.kind, p.path) for p in result.problems] == [
        ("warning", "symlink_loop", "pengqu/plane/Zrn/again")
    ]


@pytest.mark.parametrize(
    ("folders", "named"),
    [(("Spl", "Spn"), "Spl, Spn -> Spn"), (("Cpx", "Opx"), "Cpx, Opx -> Px")],
)
def test_two_folders_becoming_one_class_need_a_class_map(tmp_path, write_pair_tree, folders, named, capsys):
    write_pair_tree(tmp_path / "tree", DEFAULT, {"yarlung": {folders[0]: 2, folders[1]: 1, "Zrn": 1}})
    with pytest.raises(FolderMergeError, match=f"distinct label folders would become one class: {named}"):
        build_manifest(tmp_path / "tree", progress=False)
    assert build_manifest_main([str(tmp_path / "tree"), "--quiet"]) == 2
    assert named in capsys.readouterr().err and not (tmp_path / "tree/manifest.csv").exists()
    with pytest.raises(ManifestError, match="--class-map"):  # training straight from the tree
        load_dataset(tmp_path / "tree", progress=False)

    apart = tmp_path / "apart.yaml"
    apart.write_text(f"{folders[0]}: {folders[0]}\n{folders[1].lower()}: {folders[1]}\n")
    result = build_manifest(tmp_path / "tree", class_map=read_class_map(apart), progress=False)
    assert result.manifest.groupby("label").size().to_dict() == {folders[0]: 2, folders[1]: 1, "Zrn": 1}
    merge = tmp_path / "merge.csv"
    merge.write_text(f"folder,class\n{folders[0]},Px\n{folders[1]},Px\n")
    out = tmp_path / "m.csv"
    assert (
        build_manifest_main([str(tmp_path / "tree"), "--class-map", str(merge), "--out", str(out), "--quiet"])
        == 0
    )
    printed = capsys.readouterr().out
    assert re.search(rf"class\s+{folders[0]}\s+Px\s+class map\s+4", printed)
    assert re.search(r"domain\s+yarlung\s+yarlung\s+canonical\s+8", printed)
    assert sorted(read_manifest(out).manifest["label"]) == ["Px", "Px", "Px", "Zrn"]


def test_spn_is_mapped_as_the_dataset_names_it_with_a_note(tmp_path, write_pair_tree, capsys):
    write_pair_tree(tmp_path, DEFAULT, {"PengQu": {"spinel": 1}, "YaJiang": {"spinel": 1}})
    assert build_manifest_main([str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"class\s+spinel\s+Spn\s+alias", printed)
    assert "Spn is the published dataset's label for spinel" in printed and "titanite (sphene)" in printed


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.yaml", "- Cpx\n- Opx\n", "expected a YAML mapping"),
        ("m.yaml", "Cpx: Px\ncpx: Px\n", "folder 'cpx' is listed twice"),
        ("m.csv", "from,to\nCpx,Px\n", "expected exactly folder,class"),
        ("m.csv", "folder,class\nCpx,\n", "has an empty folder or class"),
        ("m.txt", "Cpx Px", "unknown suffix '.txt'"),
    ],
)
def test_bad_class_maps_are_named(tmp_path, write_pair_tree, name, text, message, capsys):
    (tmp_path / name).write_text(text)
    with pytest.raises(ClassMapError, match=message):
        read_class_map(tmp_path / name)
    write_pair_tree(tmp_path / "tree", DEFAULT, {"yarlung": {"Zrn": 1}})
    assert build_manifest_main([str(tmp_path / "tree"), "--class-map", str(tmp_path / name), "--quiet"]) == 2
    assert message in capsys.readouterr().err
