"""Data messages read as sentences and name what went wrong, on real files where they are at hand."""

from __future__ import annotations

import re

import pytest

from motionhub.errors import DataError
from motionhub_bvh.dataset import BVHFolder

PFNN_CLIP = "sreyafrancis-PFNN/data/animations/LocomotionFlat04_000.bvh"


def test_a_real_bvh_file_with_an_extra_value_stops_with_separate_sentences(real_data, tmp_path):
    source = real_data / PFNN_CLIP
    if not source.is_file():
        pytest.skip(f"real PFNN clip not found at {source}")
    lines = source.read_text().splitlines()
    first_frame = lines.index("MOTION") + 3
    values = len(lines[first_frame].split())
    (tmp_path / "a_good.bvh").write_text("\n".join(lines) + "\n")
    lines[first_frame + 10] += " 0.0"  # one channel value too many on the eleventh frame
    (tmp_path / "b_bad.bvh").write_text("\n".join(lines) + "\n")
    dataset = BVHFolder(str(tmp_path), train=["a_good", "b_bad"], val=[], test=[])
    with pytest.raises(DataError) as info:
        list(dataset.clips("train"))
    text = str(info.value)
    assert f"found {values + 1}. To leave bad clips out instead" in text, text
    assert not re.search(r"[^.?!] To leave", text)


def test_a_bad_first_velocity_file_says_why_it_matters_in_a_sentence_of_its_own(tmp_path):
    import torch

    from motionhub_tracks import LapsVelocities

    torch.save(torch.zeros(4), tmp_path / "a_start000000.pt")
    torch.save(torch.zeros(15, 16, 2), tmp_path / "b_start000000.pt")
    with pytest.raises(DataError) as info:
        LapsVelocities(str(tmp_path), val_fraction=0.0).format
    text = str(info.value)
    assert "holds a tensor of shape (4,); expected one float tensor" in text
    assert text.endswith("torch.save. This is the first file, and the first file sets the data set's shape; "
                         "to leave bad files out instead, set data.on_bad: skip.")
