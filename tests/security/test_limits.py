"""The bounds themselves, in-process: bounded reads, the YAML loader, config values, zip headers, weights-only loads."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch

from core.errors import HarnessError
from harness.config import MAX_YAML_DEPTH, ConfigError, load_config, load_yaml_text
from harness.runtime.safe_io import (
    DEEPSPEED_SAFE_GLOBALS,
    CheckpointRefusedError,
    deepspeed_safe_globals,
    foreign_global,
    guarded_torch_load,
)
from submissions import FormatError
from submissions.limits import InputRefusedError, decode_text, read_bounded, shorten
from submissions.package import UnsafeArchiveError, check_archive, check_package_target, safe_extract
from tests.security.hostile import alias_bomb, write_payload_pickle, zip_bomb


def test_read_bounded_refuses_what_is_not_a_small_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputRefusedError, match="FIFO"):
        read_bounded(tmp_path / "fifo", "prediction file", 100)  # returns at once: the FIFO is never opened
    with pytest.raises(InputRefusedError, match="a folder"):
        read_bounded(tmp_path, "prediction file", 100)
    with pytest.raises(InputRefusedError, match="a device"):
        read_bounded("/dev/zero", "prediction file", 100)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(InputRefusedError, match="more than the 100 bytes") as info:
        read_bounded(tmp_path / "big", "prediction file", 100)
    assert isinstance(info.value, FormatError) and info.value.problems[0].code == "too_large"
    assert read_bounded(tmp_path / "big", "prediction file", 101) == b"x" * 101


def test_decode_text_names_binary_and_non_utf8(tmp_path):
    with pytest.raises(InputRefusedError, match="NUL byte at offset 3"):
        decode_text(b"abc\x00", "f.csv", "prediction file")
    with pytest.raises(InputRefusedError, match="zip archive"):
        decode_text(b"PK\x03\x04rest", "f.csv", "prediction file")
    with pytest.raises(InputRefusedError, match="not UTF-8") as info:
        decode_text(b"ok\nok\ncaf\xe9\n", "f.csv", "prediction file")
    assert info.value.problems[0].line == 3
    assert decode_text("café\n".encode(), "f.csv", "x") == "café\n"
    assert shorten("a" * 1000, 10) == "aaaaaaaaaa... (990 more characters)"


def test_yaml_loader_refuses_bombs_depth_and_recursion_and_keeps_normal_yaml():
    with pytest.raises(ConfigError, match=r"b\.yaml:\d+: expands to more than"):
        load_yaml_text(alias_bomb(), "b.yaml")
    assert load_yaml_text(alias_bomb(levels=2, width=3), "ok.yaml")["a2"] == [[["x"] * 3] * 3] * 3  # small is fine
    with pytest.raises(ConfigError, match="nesting deeper than 64"):
        load_yaml_text("[" * 10_000 + "]" * 10_000, "d.yaml")
    nested = "x"
    for _ in range(MAX_YAML_DEPTH - 1):
        nested = f"[{nested}]"
    assert load_yaml_text(nested, "ok.yaml") is not None  # exactly the bound is accepted
    with pytest.raises(ConfigError, match="contains it"):
        load_yaml_text("a: &a [*a]", "r.yaml")
    with pytest.raises(ConfigError, match=r"y\.yaml:2: not valid YAML"):
        load_yaml_text("a: 1\n  b: [\n", "y.yaml")


@pytest.mark.parametrize(("override", "match"), [
    ("stage2.weight_decay=.inf", "not a finite number"), ("stage2.weight_decay=1e999", "not a finite number"),
    ("stage2.schedule.lr=.nan", "not a finite number"), ("seed=99999999999999999999999999", "out of range"),
    ("seed=4294967296", "out of range"), ("experiment.fold_seed=-1", "out of range"),
    ("stage2.micro_batch=-4", "out of range"), ("stage2.epochs=99999999999999999999", "out of range"),
])  # fmt: skip
def test_absurd_config_values_are_refused_with_their_key(override, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config("quick", [override])
    assert override.split("=")[0] in str(info.value)


def test_config_edge_values_are_accepted():
    assert load_config("quick", ["seed=4294967295"]).seed == 2**32 - 1
    assert load_config("quick", ["stage2.weight_decay=0"]).stage2.weight_decay == 0.0


def test_a_config_file_that_is_a_folder_fifo_or_too_big_is_named(tmp_path):
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"d\.yaml: the config file is a folder"):
        load_config(tmp_path / "d.yaml")
    os.mkfifo(tmp_path / "f.yaml")
    with pytest.raises(ConfigError, match="FIFO"):
        load_config(tmp_path / "f.yaml")
    (tmp_path / "big.yaml").write_text("#" * (2 << 20))
    with pytest.raises(ConfigError, match=r"more than the 1\.0 MiB"):
        load_config(tmp_path / "big.yaml")
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    (tmp_path / "child.yaml").write_text("base: bomb.yaml\n")
    with pytest.raises(ConfigError, match=r"bomb\.yaml:\d+: expands"):
        load_config(tmp_path / "child.yaml")


def test_zip_headers_are_checked_before_anything_is_extracted(tmp_path):
    big = zip_bomb(tmp_path / "big.zip", "predictions.csv", 300 << 20)
    with zipfile.ZipFile(big) as zf, pytest.raises(UnsafeArchiveError, match=r"inflates to 300\.0 MiB"):
        check_archive(zf, big)
    ratio = zip_bomb(tmp_path / "ratio.zip", "predictions.csv", 8 << 20)
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        safe_extract(ratio, tmp_path / "out")
    assert not (tmp_path / "out" / "predictions.csv").exists()
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as zf:
        for i in range(65):
            zf.writestr(f"f{i}", b"x")
    with pytest.raises(UnsafeArchiveError, match="65 members"):
        safe_extract(tmp_path / "many.zip", tmp_path / "out2")


def test_package_target_keeps_files_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(HarnessError, match=r"ends in \.zip"):
        check_package_target(tmp_path / "notes.txt")
    (tmp_path / "a.zip").write_text("mine")
    with pytest.raises(HarnessError, match="--force"):
        check_package_target(tmp_path / "a.zip")
    assert check_package_target(tmp_path / "a.zip", force=True) == tmp_path / "a.zip"
    assert check_package_target(tmp_path / "new.zip") == tmp_path / "new.zip"


def test_guarded_load_refuses_a_payload_and_names_its_type(tmp_path):
    sentinel = tmp_path / "RAN"
    evil = write_payload_pickle(tmp_path / "evil.pt", sentinel)
    assert foreign_global(evil) == "posix.system"
    with guarded_torch_load(), pytest.raises(CheckpointRefusedError, match=r"evil\.pt: refusing .* posix\.system"):
        torch.load(evil, weights_only=False)  # what DeepSpeed asks for
    assert not sentinel.exists()
    # Outside the context the process-wide switch still holds (set by force_weights_only).
    assert os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] == "1"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(evil, weights_only=False)
    assert not sentinel.exists()


def test_the_allow_list_is_exactly_what_deepspeed_checkpoints_need(tmp_path):
    """Genuine checkpoints of ZeRO 1 and 3 load under the guard (0 and 2 are resumed by
    tests/harness/train/test_resume.py),
    and every allow-listed name resolves in the installed DeepSpeed."""
    from harness.config import DeepSpeedSection
    from harness.folders.run import RunDir
    from harness.train.loop import fit
    from tests.harness._engine import Pairs, loop_cfg, loss_fn, tiny_model

    assert len(deepspeed_safe_globals()) == len(DEEPSPEED_SAFE_GLOBALS)
    cfg = load_config("quick")
    for stage in (1, 3):
        run = RunDir(tmp_path / f"z{stage}")
        run.prepare(cfg, resume=False)
        fit(tiny_model(), Pairs(16), loss_fn, loop_cfg(epochs=1, micro=8, accum=1), DeepSpeedSection(stage, "fp32"),
            run, seed=0)  # fmt: skip
        files = sorted(run.checkpoints.glob("*/*.pt"))
        assert len(files) == 2
        with guarded_torch_load() as loaded:
            for f in files:
                torch.load(f, map_location="cpu", weights_only=False)
        assert loaded == [str(f) for f in files]
