"""bdca-harness: the CLI, configs, trainers, experiments, reports and benchmarks (the top layer)."""

__version__ = "0.1.0"
