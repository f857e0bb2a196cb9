import pytest

from obliviate.errors import ConfigError, DataFileNotFoundError
from obliviate.training import RunConfig, config_reference


def test_defaults_and_roundtrip():
    cfg = RunConfig.from_dict({})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.training.schedule == "cosine"


@pytest.mark.parametrize("raw, needle", [
    ({"training": {"blockz": 3}}, "unknown key `training.blockz`"),
    ({"trainin": {}}, "unknown section"),
    ({"training": {"blocks": "3"}}, "`training.blocks` to be int"),
    ({"training": {"blocks": True}}, "`training.blocks` to be int"),
    ({"training": {"blocks": 0}}, "`training.blocks` to be an int >= 1"),
    ({"training": {"lr": -1.0}}, "`training.lr`"),
    ({"training": {"optimizer": "rmsprop"}}, "one of sgd, adam, adamw"),
    ({"training": {"partition": "order"}}, "order_file"),
    ({"data": {"validation_fraction": 1.5}}, "validation_fraction"),
    ({"canary": {"block": 99}}, "canary.block"),
])
def test_bad_values_are_rejected_with_the_key(raw, needle):
    with pytest.raises(ConfigError, match=None) as info:
        RunConfig.from_dict(raw)
    assert needle in str(info.value)


def test_int_is_accepted_for_float():
    assert RunConfig.from_dict({"training": {"lr": 1}}).training.lr == 1.0


def test_toml_errors(tmp_path):
    with pytest.raises(DataFileNotFoundError):
        RunConfig.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[training\nblocks = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RunConfig.from_toml(bad)


def test_reference_documents_every_key():
    ref = config_reference()
    for section, values in RunConfig().to_dict().items():
        for key in values:
            assert f"| `{key}` |" in ref, (section, key)
