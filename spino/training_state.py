"""A training job's state in ``<workdir>/last.pt``: what an interrupted run resumes from (the panoptic
model, and each head of the label generator).

A run continues from it only if it is the same run, interrupted: the same signature (settings,
image ids and the content digests of what it trains on) and not finished. Anything else starts at
step 0, and says why in the log. The model is anything with ``trainable_state()`` and
``load_trainable_state()`` (the weights that train, not a frozen backbone); ``extra`` holds what
else the loop needs to go on exactly (a schedule's state, a random generator's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spino.checkpoint import load_checkpoint, save_checkpoint
from spino.progress import log
from spino.provenance import text_digest


def settings_hash(*parts: dict) -> str:
    return text_digest(json.dumps(parts, sort_keys=True, default=str))


@dataclass
class TrainingState:
    path: Path
    signature: str
    step: int = 0
    kind: str = "panoptic-training"  # the checkpoint's kind: a head's state is not a panoptic model's
    history: list = field(default_factory=list)  # per step: step, lr, loss terms
    validation: list = field(default_factory=list)  # per validation: {step, pq, sq, rq, miou, images}
    extra: dict = field(default_factory=dict)

    @classmethod
    def resume(
        cls,
        path: Path,
        signature: str,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        kind: str = "panoptic-training",
    ) -> TrainingState:
        """The state to continue from (weights and optimizer loaded into ``model`` and ``optimizer``),
        or a fresh one at step 0."""
        state, saved = cls.load(path, signature, kind)
        if saved is not None:
            model.load_trainable_state(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        return state

    @classmethod
    def load(cls, path: Path, signature: str, kind: str) -> tuple[TrainingState, dict | None]:
        """The state to continue from, and the saved weights and optimizer state for the caller to
        load once it has built them (None, and a fresh state at step 0, where there is nothing to
        continue: the log says why)."""
        state = cls(path, signature, kind=kind)
        if not path.is_file():
            return state, None
        saved = load_checkpoint(path, kind)
        if saved["signature"] != signature:
            log(f"ignoring checkpoint {path}: it was trained with other settings or on other labels")
            return state, None
        if saved["finished"]:
            log(f"ignoring checkpoint {path}: that run finished; this one is asked to train again")
            return state, None
        state.step, state.history, state.validation = saved["step"], saved["history"], saved["validation"]
        state.extra = saved.get("extra", {})
        log(f"resuming from checkpoint {path} at step {state.step}")
        return state, saved

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, finished: bool = False) -> None:
        save_checkpoint(
            self.path,
            self.kind,
            {
                "signature": self.signature,
                "step": self.step,
                "finished": finished,
                "model": model.trainable_state(),
                "optimizer": optimizer.state_dict(),
                "history": self.history,
                "validation": self.validation,
                "extra": self.extra,
            },
        )
