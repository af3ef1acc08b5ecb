"""Fuzzing the config loader: any YAML text, any override, any nested mapping gives a Config or a ConfigError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config import Config, ConfigError, load_config

KEYS = ["seed", "features", "visual", "audio", "encoder", "depth", "img_size", "stage2", "epochs", "windows",
        "length", "stride", "model", "name", "temperature", "deepspeed", "zero_stage", "precision", "bogus", "base"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=True), st.text(max_size=8),
                    st.sampled_from(["bdca", "mfcc", "auto", "visual", "demo"]))
trees = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                     st.dictionaries(st.sampled_from(KEYS), kids, max_size=4)),
                     max_leaves=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), trees, max_size=5))
def test_from_dict_fuzz(data):
    try:
        cfg = Config.from_dict(data)
    except ConfigError:
        return
    assert isinstance(cfg, Config)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.text(max_size=120))
def test_yaml_text_fuzz(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        cfg = load_config(path)
    except ConfigError:
        return
    assert isinstance(cfg, Config)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["stage2.epochs", "windows.stride", "model.temperature", "nope.key", "deepspeed.zero_stage",
                        "features.audio", "encoder"]), st.text(max_size=12))
def test_override_fuzz(key, value):
    try:
        cfg = load_config("quick", [f"{key}={value}"])
    except ConfigError as exc:
        assert key in str(exc) or key.split(".")[0] in str(exc), exc  # the message names the key path
        return
    assert isinstance(cfg, Config)
