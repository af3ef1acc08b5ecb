"""A child process never inherits the torch.distributed rendezvous that `setup_strategy` put in this process."""

from __future__ import annotations

import subprocess
import sys

from harness.runtime.childenv import DIST_VARS, child_env
from harness.runtime.distributed import setup_strategy


def test_child_env_leaves_out_the_rendezvous_and_dropped_names(monkeypatch):
    for name in DIST_VARS:
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.setenv("KEEP_ME", "yes")
    env = child_env({"EXTRA": "x"}, drop=("ATEN_CPU_CAPABILITY",))
    assert not set(DIST_VARS) & set(env)
    assert "ATEN_CPU_CAPABILITY" not in env
    assert env["KEEP_ME"] == "yes" and env["EXTRA"] == "x"
    # `extra` wins over a dropped name: the caller sets the child's own value.
    assert child_env({"ATEN_CPU_CAPABILITY": "avx2"}, drop=("ATEN_CPU_CAPABILITY",))["ATEN_CPU_CAPABILITY"] == "avx2"


def test_a_child_of_an_initialised_process_opens_its_own_world():
    info = setup_strategy()  # this process now holds MASTER_PORT
    assert info.world_size == 1
    code = (
        "from harness.runtime.distributed import setup_strategy; i = setup_strategy(); "
        "import torch.distributed as d; print(i.rank, i.world_size, d.is_initialized())"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=180,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == ["0", "1", "True"]
