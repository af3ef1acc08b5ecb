"""A demo folder's layout: the corpus, its preprocessed cache, the experiment, and what the demo reports.

    <out>/corpus/              the generated corpus          <out>/experiments/   an experiment folder
    <out>/face_check/          crops of the face check       <out>/plots/         the demo's figures
    <out>/scores.json          the guarded scores            <out>/timings.json   stage times, peak memory
    <out>/submission.zip       the packaged test submission  <out>/report.html    the HTML report
    <out>/ensembles/<name>/    ensemble folders (the fold ensemble, a late fusion of Table IV's rows)

`DemoDir` is the only code that spells these names.
"""

from __future__ import annotations

from pathlib import Path

from harness.folders.experiment import ExperimentDir

CORPUS_DIR = "corpus"
FACE_CHECK_DIR = "face_check"
PLOTS_DIR = "plots"
EXPERIMENTS_DIR = "experiments"
SUBMISSION_ZIP = "submission.zip"
SCORES_FILE = "scores.json"
TIMINGS_FILE = "timings.json"
REPORT_FILE = "report.html"
ENSEMBLES_DIR = "ensembles"

DEMO_FILES = (CORPUS_DIR, FACE_CHECK_DIR, PLOTS_DIR, EXPERIMENTS_DIR, SUBMISSION_ZIP, SCORES_FILE, TIMINGS_FILE,
              REPORT_FILE, ENSEMBLES_DIR)  # fmt: skip
"""What the demo writes in its folder beside the preprocessed cache."""


class DemoDir:
    """The files and folders of one demo folder (nothing is created or read here)."""

    def __init__(self, path: str | Path) -> None:
        """Args:
        path: the demo folder.
        """
        self.path = Path(path)

    @classmethod
    def of_scores(cls, scores: str | Path) -> DemoDir | None:
        """The demo folder a `scores.json` file stands for (None: the file has another name)."""
        scores = Path(scores)
        return cls(scores.parent) if scores.name == SCORES_FILE else None

    @property
    def corpus(self) -> Path:
        """The generated corpus."""
        return self.path / CORPUS_DIR

    @property
    def face_check(self) -> Path:
        """The face check's crops."""
        return self.path / FACE_CHECK_DIR

    @property
    def plots(self) -> Path:
        """The demo's figures."""
        return self.path / PLOTS_DIR

    def plot(self, name: str) -> Path:
        """A figure of the demo: `plots/<name>.png`."""
        return self.plots / f"{name}.png"

    @property
    def experiments(self) -> ExperimentDir:
        """The demo's experiment folder."""
        return ExperimentDir(self.path / EXPERIMENTS_DIR)

    @property
    def ensembles(self) -> Path:
        """The demo's ensemble folders (each laid out like a run folder: `RunDir`)."""
        return self.path / ENSEMBLES_DIR

    def ensemble(self, name: str) -> Path:
        """One ensemble folder: `ensembles/<name>`."""
        return self.ensembles / name

    @property
    def submission_zip(self) -> Path:
        """The packaged test submission."""
        return self.path / SUBMISSION_ZIP

    @property
    def scores_file(self) -> Path:
        """The guarded scores."""
        return self.path / SCORES_FILE

    @property
    def timings_file(self) -> Path:
        """Stage times and peak memory."""
        return self.path / TIMINGS_FILE

    @property
    def report_file(self) -> Path:
        """The HTML report."""
        return self.path / REPORT_FILE

    def looks_like_one(self) -> bool:
        """Whether the folder holds a demo's scores or experiment folder."""
        return self.scores_file.is_file() or self.experiments.path.is_dir()
