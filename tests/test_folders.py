"""Output folders appear whole or not at all."""

import pytest

from motionhub.data.folders import atomic_folder, check_clip_file_names, check_new_folder
from motionhub.errors import MotionhubError


def test_a_filled_folder_appears_under_its_name_and_replaces_an_empty_one(tmp_path):
    (tmp_path / "out").mkdir()
    with atomic_folder(tmp_path / "out") as partial:
        (partial / "a.txt").write_text("a")
        assert not (tmp_path / "out" / "a.txt").exists()  # not visible before the block ends
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_error_inside_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "deep" / "out") as partial:
            (partial / "a.txt").write_text("a")
            raise RuntimeError("bad clip")
    assert list((tmp_path / "deep").iterdir()) == []


def test_a_used_folder_or_an_escaping_clip_id_is_refused(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(MotionhubError, match="not an empty folder; name a new folder for the token files"):
        check_new_folder(tmp_path / "used", "the token files")
    check_new_folder(tmp_path / "fresh", "the token files")
    check_clip_file_names(["a", "sub/b"], tmp_path)
    for bad in ("../a", "/etc/a", ""):
        with pytest.raises(MotionhubError, match="cannot be a file name"):
            check_clip_file_names([bad], tmp_path)
