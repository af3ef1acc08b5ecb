"""Stale temporary files of killed writes."""


def test_remove_stale_temps_deletes_only_temporary_files_of_the_named_folders(tmp_path):
    from core.atomic import remove_stale_temps

    a, b, nested = tmp_path / "a", tmp_path / "b", tmp_path / "a" / "sub"
    nested.mkdir(parents=True)
    b.mkdir()
    (a / ".x.npy.abc123.tmp").write_bytes(b"half")
    (b / ".y.json.zz.tmp").write_text("{")
    (nested / ".z.tmp").write_text("kept: not recursive")
    (a / "x.npy").write_bytes(b"whole")
    (a / "notes.tmp").write_text("kept: not hidden")
    assert remove_stale_temps([a, b, tmp_path / "missing"]) == 2
    assert sorted(p.name for p in a.iterdir()) == ["notes.tmp", "sub", "x.npy"]
    assert list(b.iterdir()) == []
    assert (nested / ".z.tmp").exists()
