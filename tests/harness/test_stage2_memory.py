"""Peak resident-set measurement (`harness.resources`), which `harness demo` records per stage.

Not tested here: that stage 2's peak does not grow with the dataset. Stage 2 reads the cache through memory maps, and
the resident set counts the mapped feature pages it touched (file-backed, reclaimable by the kernel): the same
streaming run measured 147 MiB of growth on one occasion and 618 MiB on another, depending on the page cache, so a
pass/fail on RSS would be noise. The `stage2_peak_rss` benchmark row reports the figures instead.
"""

from __future__ import annotations

from harness.resources import PeakRss, current_rss_mib, peak_rss


def test_peak_rss_reads_its_children_and_this_process():
    import subprocess
    import sys

    child = "import numpy as np; b = np.ones(96 * 2**20 // 8); print(b.sum())"
    subprocess.run([sys.executable, "-c", child], check=True, capture_output=True)
    assert peak_rss().children_mib >= 96  # the child's own peak, reported after it was waited for
    assert peak_rss().self_mib >= current_rss_mib() - 0.5  # the peak includes the present
    p = PeakRss(10.04, 20.0)
    assert p.max_mib == 20.0 and p.as_dict() == {"self": 10.0, "children": 20.0}
