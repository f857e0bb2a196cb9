"""Recorded block training: partition, deterministic block training, recording, replay."""

from .block import evaluate, make_optimizer, predict_logits, train_block
from .chain import load_state, optimizer_state_after, state_after
from .config import RunConfig, config_reference
from .partition import partition_ids, read_id_file
from .recording import train_run
from .replay import replay_block
from .run import Run, open_run
from .trainer import Batch, StepInfo, Trainer

__all__ = ["Batch", "Run", "RunConfig", "StepInfo", "Trainer", "config_reference", "evaluate", "load_state",
           "make_optimizer", "open_run", "optimizer_state_after", "partition_ids", "predict_logits", "read_id_file",
           "replay_block", "state_after", "train_block", "train_run"]
