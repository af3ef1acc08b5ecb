"""Peak resident-set measurement (`harness.runtime.resources`), which `harness demo` records per stage, and stage 2's
memory
against the dataset's size.

A process's own peak is `VmHWM`, not `ru_maxrss`: a child's `ru_maxrss` starts at its parent's high-water mark
(`execve` keeps the replaced image's), so a probe started from a large pytest process reported the pytest
process's peak (the 618 against 147 MiB seen for one streaming run, and 1,658 MiB for both benchmark sizes). The
dataset test judges the process's own peak and, apart from the mapped cache pages, its anonymous memory
(`RssAnon`, sampled every 2 ms by `tests.harness._stage2_rss.StatusPeaks`), which is what stage 2 allocates.
"""

from __future__ import annotations

import pytest

from harness.runtime.resources import PeakRss, current_rss_mib, peak_rss, reset_peak_rss
from tests.harness._stage2_rss import measure

VIDEOS, FRAMES, DV = 4, 3000, 1024  # N videos of 2 min at 25 fps: 50 MiB of training streams


def test_peak_rss_reads_its_children_and_this_process():
    import subprocess
    import sys

    child = "import numpy as np; b = np.ones(96 * 2**20 // 8); print(b.sum())"
    subprocess.run([sys.executable, "-c", child], check=True, capture_output=True)
    assert peak_rss().children_mib >= 96  # the child's own peak, reported after it was waited for
    assert peak_rss().self_mib >= current_rss_mib() - 0.5  # the peak includes the present
    p = PeakRss(10.04, 20.0)
    assert p.max_mib == 20.0 and p.as_dict() == {"self": 10.0, "children": 20.0}


def test_a_child_reports_its_own_peak_not_its_parents():
    import subprocess
    import sys

    import numpy as np

    block = np.ones(256 * 2**20 // 8)  # resident in this process while the child starts
    code = "from harness.runtime.resources import peak_rss; print(peak_rss().self_mib)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert float(out) < 128, out  # the child's interpreter, not the 256 MiB of its parent
    assert block.sum() > 0


def test_reset_lowers_the_peak():
    import numpy as np

    block = np.ones(128 * 2**20 // 8)
    high = peak_rss().self_mib
    del block
    if not reset_peak_rss():
        pytest.skip("this system cannot reset a process's peak resident set (/proc/self/clear_refs)")
    assert peak_rss().self_mib <= high - 100


@pytest.mark.slow
def test_stage2_anonymous_memory_does_not_grow_with_the_dataset(tmp_path):
    """N videos for 4 epochs against 4N for 1 epoch (the same batch, window, model and number of steps: the peak
    creeps up with the steps taken, whatever the data), each in a fresh process; and the 4N data held in memory
    once read, the control that shows the measurement sees data that is held."""
    small = measure(tmp_path / "n", VIDEOS, FRAMES, DV, epochs=4)
    large = measure(tmp_path / "4n", 4 * VIDEOS, FRAMES, DV)
    held = measure(tmp_path / "4n", 4 * VIDEOS, FRAMES, DV, hold=True)
    extra_data = large["data_mib"] - small["data_mib"]
    assert extra_data > 140 and large["windows"] == 4 * small["windows"]  # 4x the data, the same batch
    assert large["micro_batch"] == small["micro_batch"] == 8 and large["steps"] == small["steps"]
    assert min(small["samples"], large["samples"]) > 100  # the sampler ran through the training
    # Streaming: what stage 2 allocates (model, optimiser, a batch, a validation video) does not follow the data,
    # nor does the resident set with the mapped cache pages.
    assert abs(large["anon_growth_mib"] - small["anon_growth_mib"]) < 0.25 * extra_data, (small, large)
    assert abs(large["growth_mib"] - small["growth_mib"]) < 0.25 * extra_data, (small, large)
    # The control: features held once read add (nearly) all of the 4N data to the anonymous peak.
    assert held["anon_growth_mib"] - large["anon_growth_mib"] > 0.8 * large["data_mib"], (large, held)
