"""Comparison recipes: each ``configs/<set>/<base>_vs/<difference>.yaml`` equals its baseline
``configs/<set>/<base>.yaml`` in every section but one, so two runs compare one choice."""

from pathlib import Path

import pytest
import yaml
from helpers import REPO

COMPARISONS = sorted((REPO / "configs").rglob("*_vs/*.yaml"))


def baseline_of(path: Path) -> Path:
    return path.parent.parent / (path.parent.name.removesuffix("_vs") + ".yaml")


def differing_sections(path: Path) -> list[str]:
    ours, base = (yaml.safe_load(p.read_text()) for p in (path, baseline_of(path)))
    assert set(ours) == set(base), f"{path.name} and its baseline have different sections"
    return [section for section in ours if section != "run" and ours[section] != base[section]]


def test_comparison_recipes_ship_for_every_difference_the_track_tokenizers_have():
    names = {str(p.relative_to(REPO / "configs")) for p in COMPARISONS}
    assert {"humanml3d/t2m_gpt_vq_vs/fsq.yaml"} <= names
    assert len([n for n in names if n.startswith("gtea/")]) >= 6


@pytest.mark.parametrize("path", COMPARISONS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_comparison_recipe_differs_from_its_baseline_in_exactly_one_section(path):
    assert baseline_of(path).is_file(), f"{path} has no baseline {baseline_of(path)}"
    assert len(differing_sections(path)) == 1, f"{path.name} differs in {differing_sections(path)}"
    ours, base = (yaml.safe_load(p.read_text())["run"] for p in (path, baseline_of(path)))
    assert ours["name"] != base["name"], "runs of the two recipes must not share a name"
    assert {k: v for k, v in ours.items() if k != "name"} == {k: v for k, v in base.items() if k != "name"}


@pytest.mark.parametrize("path", COMPARISONS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_comparison_recipe_says_what_it_changes_and_how_to_compare(path):
    text = path.read_text()
    section = differing_sections(path)[0]
    assert f"\n{section}:" in text or text.startswith(f"{section}:")
    assert "motionhub compare" in text.split("\nrun:")[0], "the header shows the comparison command"
