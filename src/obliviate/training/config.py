"""Run configuration: TOML in, validated dataclasses out. Unknown keys are rejected.

Every key is documented in the field's ``doc`` metadata and in ``docs/config.md``.

>>> cfg = RunConfig.from_dict({"data": {"name": "digits"}, "training": {"blocks": 4}})
>>> cfg.training.blocks, cfg.model.name
(4, 'small_cnn')
>>> RunConfig.from_dict({"training": {"blockz": 4}})
Traceback (most recent call last):
...
obliviate.errors.ConfigError: unknown key `training.blockz`; allowed keys in [training]: ...
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear")
PARTITIONS = ("random", "stratified", "order")


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class DataConfig:
    name: str = field(default="digits", metadata=_doc("registered dataset name (see `obliviate train --help`)"))
    options: dict[str, Any] = field(default_factory=dict, metadata=_doc(
        "options passed to the dataset loader, e.g. {root = \"/data/mnist\"}"))
    validation_fraction: float = field(default=0.1, metadata=_doc(
        "share of the training set held out (never trained on, never deletable) to validate stitched models"))


CUSTOM_MODEL = "custom"  # ``model.name`` of a run whose model comes from the user's code


@dataclass(frozen=True)
class ModelConfig:
    name: str = field(default="small_cnn", metadata=_doc(
        "registered model name (`custom` when `factory` is set)"))
    options: dict[str, Any] = field(default_factory=dict, metadata=_doc(
        "options passed to the model builder or factory as keyword arguments, e.g. {width = 32}"))
    factory: str = field(default="", metadata=_doc(
        "your own model: an import path package.module:function called as function(input_shape, num_classes, "
        "**options) under the seeded torch generator; recorded, so every later command rebuilds it (the "
        "package must be importable then: PYTHONPATH)"))

    def __post_init__(self) -> None:
        if self.factory:
            from .._imports import check_import_path

            try:
                check_import_path(self.factory)
            except ConfigError as exc:
                raise ConfigError(f"`model.factory`: {exc}") from None
            if self.name not in (CUSTOM_MODEL, ModelConfig.name):
                raise ConfigError(f"give either model.name ({self.name!r}) or model.factory ({self.factory!r}), "
                                  f"not both")
            object.__setattr__(self, "name", CUSTOM_MODEL)


@dataclass(frozen=True)
class TrainingConfig:
    blocks: int = field(default=20, metadata=_doc("number of blocks B the training set is split into"))
    epochs_per_block: int = field(default=5, metadata=_doc("epochs E trained on each block"))
    batch_size: int = field(default=32, metadata=_doc("minibatch size"))
    optimizer: str = field(default="adam", metadata=_doc(f"one of {', '.join(OPTIMIZERS)}"))
    lr: float = field(default=1e-3, metadata=_doc("peak learning rate"))
    momentum: float = field(default=0.9, metadata=_doc("SGD momentum (ignored by adam/adamw)"))
    weight_decay: float = field(default=0.0, metadata=_doc("weight decay"))
    schedule: str = field(default="cosine", metadata=_doc(
        f"learning-rate schedule over the whole run, one of {', '.join(SCHEDULES)}"))
    min_lr_ratio: float = field(default=0.0, metadata=_doc(
        "final learning rate as a fraction of lr (cosine and linear decay towards it)"))
    warmup_fraction: float = field(default=0.0, metadata=_doc("share of the run spent warming the rate up linearly"))
    partition: str = field(default="random", metadata=_doc(
        f"how samples are assigned to blocks, one of {', '.join(PARTITIONS)}"))
    order_file: str = field(default="", metadata=_doc(
        "for partition = \"order\": a text file with every training id, one per line, in training order"))
    seed: int = field(default=0, metadata=_doc("seed of the model init, the partition and every minibatch order"))
    device: str = field(default="cpu", metadata=_doc(
        "where blocks are trained: \"cpu\" (bit-exact replay) or \"cuda\" / \"cuda:N\" (when present); the chain "
        "is stored on the CPU either way"))
    trainer: str = field(default="", metadata=_doc(
        "your own training step: an import path package.module:attribute naming an obliviate Trainer (or a "
        "function returning one; docs/training.md); empty: the built-in cross-entropy loop. `--trainer` and "
        "train_run(trainer=...) take precedence"))


@dataclass(frozen=True)
class StoreConfig:
    snapshot_every: int = field(default=10, metadata=_doc(
        "store a full model snapshot every this many blocks (updates are stored for every block)"))
    commit_interval_s: float = field(default=1.0, metadata=_doc(
        "while training, rewrite the manifest at most this often (0: after every block); a crash loses at most "
        "the blocks finished since, which --resume retrains"))


@dataclass(frozen=True)
class CanaryConfig:
    block: int = field(default=0, metadata=_doc(
        "plant a backdoor canary user in this block (1-based; 0: no canary). Used by the demo and verification"))
    count: int = field(default=30, metadata=_doc("number of the canary user's samples"))
    target: int = field(default=0, metadata=_doc("label the canary samples are relabelled to"))
    trigger_size: int = field(default=2, metadata=_doc("side of the square trigger patch, in pixels"))
    trigger_value: float = field(default=1.0, metadata=_doc("pixel value of the trigger patch"))
    trigger_pattern: str = field(default="solid", metadata=_doc("patch pattern: solid or checker"))


MEMORISED_KINDS = ("mislabelled", "atypical")


@dataclass(frozen=True)
class MemorisedConfig:
    users: int = field(default=0, metadata=_doc(
        "plant this many users the model memorises (0: none); see obliviate.data.memorised. Used by verification"))
    size: int = field(default=1, metadata=_doc("samples per memorised user"))
    kind: str = field(default="mislabelled", metadata=_doc(
        f"one of {', '.join(MEMORISED_KINDS)}: a wrong label, or an inverted image with a wrong label"))
    block: int = field(default=0, metadata=_doc(
        "first block holding memorised users (1-based; 0: the last block); users go round-robin to blocks block..B"))


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig, "store": StoreConfig,
             "canary": CanaryConfig, "memorised": MemorisedConfig}


def _check_section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"unknown key `{name}.{key}`; allowed keys in [{name}]: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = fields[key].default if fields[key].default is not dataclasses.MISSING else {}
        want = type(default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"Expected `{name}.{key}` to be {want.__name__}, but got {value!r}")
        values[key] = value
    return cls(**values)


@dataclass(frozen=True)
class RunConfig:
    """The whole configuration of a recorded run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    memorised: MemorisedConfig = field(default_factory=MemorisedConfig)

    def __post_init__(self) -> None:
        t = self.training

        def bad(key: str, want: str, got: Any) -> ConfigError:
            return ConfigError(f"Expected `{key}` to be {want}, but got {got!r}")

        if t.blocks < 1:
            raise bad("training.blocks", "an int >= 1", t.blocks)
        if t.epochs_per_block < 1:
            raise bad("training.epochs_per_block", "an int >= 1", t.epochs_per_block)
        if t.batch_size < 1:
            raise bad("training.batch_size", "an int >= 1", t.batch_size)
        if not t.lr > 0:
            raise bad("training.lr", "a float > 0", t.lr)
        if not 0 <= t.momentum < 1:
            raise bad("training.momentum", "a float in [0, 1)", t.momentum)
        if t.weight_decay < 0:
            raise bad("training.weight_decay", "a float >= 0", t.weight_decay)
        if not 0 <= t.min_lr_ratio <= 1:
            raise bad("training.min_lr_ratio", "a float in [0, 1]", t.min_lr_ratio)
        if not 0 <= t.warmup_fraction < 1:
            raise bad("training.warmup_fraction", "a float in [0, 1)", t.warmup_fraction)
        for key, value, allowed in (("training.optimizer", t.optimizer, OPTIMIZERS),
                                    ("training.schedule", t.schedule, SCHEDULES),
                                    ("training.partition", t.partition, PARTITIONS)):
            if value not in allowed:
                raise ConfigError(f"Expected `{key}` to be one of {', '.join(allowed)}, but got {value!r}")
        if not (t.device == "cpu" or t.device == "cuda" or (t.device.startswith("cuda:") and t.device[5:].isdigit())):
            raise bad("training.device", "\"cpu\", \"cuda\" or \"cuda:N\"", t.device)
        if t.trainer:
            from .._imports import check_import_path

            try:
                check_import_path(t.trainer)
            except ConfigError as exc:
                raise ConfigError(f"`training.trainer`: {exc}") from None
        if t.partition == "order" and not t.order_file:
            raise ConfigError("training.partition = \"order\" needs training.order_file, a file of ids one per line")
        if not 0 <= self.data.validation_fraction < 1:
            raise bad("data.validation_fraction", "a float in [0, 1)", self.data.validation_fraction)
        if not 0 <= self.canary.block <= t.blocks:
            raise bad("canary.block", f"an int in [0, {t.blocks}] (0: no canary)", self.canary.block)
        if self.canary.count < 1:
            raise bad("canary.count", "an int >= 1", self.canary.count)
        mem = self.memorised
        if mem.users < 0 or mem.size < 1:
            raise bad("memorised.users and memorised.size", "ints >= 0 and >= 1", (mem.users, mem.size))
        if not 0 <= mem.block <= t.blocks:
            raise bad("memorised.block", f"an int in [0, {t.blocks}] (0: the last block)", mem.block)
        if mem.kind not in MEMORISED_KINDS:
            raise ConfigError(f"Expected `memorised.kind` to be one of {', '.join(MEMORISED_KINDS)}, but got "
                              f"{mem.kind!r}")
        if self.store.commit_interval_s < 0:
            raise bad("store.commit_interval_s", "a float >= 0", self.store.commit_interval_s)
        if self.store.snapshot_every < 1:
            raise bad("store.snapshot_every", "an int >= 1", self.store.snapshot_every)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        unknown = sorted(set(raw) - set(_SECTIONS))
        if unknown:
            raise ConfigError(f"unknown section(s) {unknown}; allowed sections: {', '.join(_SECTIONS)}")
        return cls(**{name: _check_section(name, sec, raw.get(name, {})) for name, sec in _SECTIONS.items()})

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        """Read a TOML config file. Unlike :meth:`from_dict`, a file must say what it trains on: an empty
        file, or one without ``[data]`` and its ``name``, is an error rather than a run on defaults."""
        from ..data.textfile import read_user_text

        path = Path(path)
        text = read_user_text(path, "config file")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        if not raw:
            raise ConfigError(f"config file {path} is empty; start from configs/digits.toml (keys: docs/config.md)")
        config = cls.from_dict(raw)  # unknown keys and bad values first: they are the likelier mistake
        if not isinstance(raw.get("data"), dict) or "name" not in raw["data"]:
            raise ConfigError(f"config file {path} does not say what to train on: add a [data] section with "
                              f"name = \"digits\" (or another dataset; see docs/config.md)")
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **sections: dict[str, Any]) -> RunConfig:
        """A copy with some keys changed: ``cfg.replace(training={"seed": 1})``."""
        raw = self.to_dict()
        for name, changes in sections.items():
            raw.setdefault(name, {}).update(changes)
        return RunConfig.from_dict(raw)


def config_reference() -> str:
    """Markdown reference of every key (used to write docs/config.md)."""
    lines = []
    for name, cls in _SECTIONS.items():
        lines += [f"### [{name}]", "", "| key | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            factory = f.default_factory  # a local, so that the MISSING check narrows it
            default = f.default if f.default is not dataclasses.MISSING or factory is dataclasses.MISSING else factory()
            lines.append(f"| `{f.name}` | `{default!r}` | {f.metadata.get('doc', '')} |")
        lines.append("")
    return "\n".join(lines)
