"""Which rivers and classes a run asks for: names matched as the data's folder names are, repeats refused."""

from __future__ import annotations

import pandas as pd
import pytest

from san.evaluation.protocols import UsageError, resolve_protocol, select_classes


def manifest(domains: list[str], labels: tuple[str, ...] = ("Zrn", "quartz")) -> pd.DataFrame:
    rows = [(f"{d}/{c}/{i}", d, c) for d in domains for c in labels for i in range(2)]
    return pd.DataFrame(rows, columns=["sample_id", "domain", "label"])


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        (["yarlung", "yarlung"], r"river yarlung is named more than once \(yarlung, yarlung\)"),
        (["yarlung", "YaJiang"], r"river yarlung is named more than once \(yarlung, YaJiang\)"),
        (["Sandstone", "sandstone"], r"river sandstone is named more than once"),
    ],
)
def test_a_river_named_twice_is_a_usage_error(domains, message):
    with pytest.raises(UsageError, match=message):
        resolve_protocol(manifest(["yarlung", "pengqu", "sandstone"]), domains, None, None)


def test_names_the_data_does_not_canonicalise_match_in_any_case():
    data = manifest(["yarlung", "sandstone", "Site-B"])
    protocol = resolve_protocol(data, ["SandStone", "site_b"], None, None)
    assert protocol.sources == ("Site-B", "sandstone") and protocol.targets == ("yarlung",)
    assert resolve_protocol(data, ["YARLUNG"], ["SANDSTONE"], None).targets == ("sandstone",)
    with pytest.raises(UsageError, match="unknown river.*granite; the data hold"):
        resolve_protocol(data, ["granite"], None, None)
    assert set(select_classes(data, ["QUARTZ", "zircon"])["label"]) == {"quartz", "Zrn"}
    with pytest.raises(UsageError, match="class Zrn is named more than once"):
        select_classes(data, ["Zrn", "zircon"])
