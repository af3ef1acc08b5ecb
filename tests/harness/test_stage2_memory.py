"""Stage 2 streams its windows from the feature cache: its peak memory scales with the batch, not the dataset.

Each size trains in a fresh process (`tests.harness._stage2_rss`): N training videos of 1024-d visual features
for 4 epochs and 4N for 1 epoch, i.e. the same batch, window, model and number of steps (the peak creeps up with
the steps taken, whatever the data). The peak resident set's growth over the process's post-import baseline
must not follow the data: 4N adds 150 MiB of cached features and may add at most a quarter of that. The control
(stage 2 holding each video's features once read) shows that the measurement sees data that is held.
"""

from __future__ import annotations

import pytest

from harness.resources import PeakRss, current_rss_mib, peak_rss, reset_peak_rss
from tests.harness._stage2_rss import measure

VIDEOS, FRAMES, DV = 4, 3000, 1024  # N videos of 2 min at 25 fps: 50 MiB of training streams


def test_peak_rss_reads_this_process_and_its_children():
    import subprocess
    import sys

    import numpy as np

    rss = current_rss_mib()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, every page touched
    now = current_rss_mib()
    assert now >= rss + 60
    assert peak_rss().self_mib >= now - 0.5  # the peak includes the present
    del block
    child = "import numpy as np; b = np.ones(96 * 2**20 // 8); print(b.sum())"
    subprocess.run([sys.executable, "-c", child], check=True, capture_output=True)
    assert peak_rss().children_mib >= 96  # the child's own peak, reported after it was waited for
    p = PeakRss(10.04, 20.0)
    assert p.max_mib == 20.0 and p.as_dict() == {"self": 10.0, "children": 20.0}


def test_reset_lowers_the_peak_to_the_current_resident_set():
    import numpy as np

    block = np.ones(128 * 2**20 // 8)
    high = peak_rss().self_mib
    del block
    if not reset_peak_rss():
        pytest.skip("this system cannot reset a process's peak resident set (/proc/self/clear_refs)")
    assert peak_rss().self_mib <= high - 100
    assert peak_rss().self_mib == pytest.approx(current_rss_mib(), abs=8)


@pytest.mark.slow
def test_stage2_peak_memory_does_not_grow_with_the_dataset(tmp_path):
    small = measure(tmp_path / "n", VIDEOS, FRAMES, DV, epochs=4)
    large = measure(tmp_path / "4n", 4 * VIDEOS, FRAMES, DV)
    held = measure(tmp_path / "4n", 4 * VIDEOS, FRAMES, DV, hold=True)
    extra_data = large["data_mib"] - small["data_mib"]
    assert extra_data > 140 and large["windows"] == 4 * small["windows"]  # 4x the data, the same batch
    assert large["micro_batch"] == small["micro_batch"] == 8 and large["steps"] == small["steps"]
    # Streaming: the growth over the baseline is the model, the optimiser, one batch and one validation video.
    assert abs(large["growth_mib"] - small["growth_mib"]) < 0.25 * extra_data, (small, large)
    assert large["children_peak_mib"] - small["children_peak_mib"] < 0.25 * extra_data, (small, large)
    # The control: features held in memory add (nearly) all of the 4N data to the peak, of the main process or of
    # the data-loader worker that read them.
    held_extra = max(held["growth_mib"] - large["growth_mib"], held["children_peak_mib"] - large["children_peak_mib"])
    assert held_extra > 0.8 * large["data_mib"], (large, held)
