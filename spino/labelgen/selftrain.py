"""Self-training of the semantic head on similar unlabelled images (PASTEL).

Each annotated image gets its nearest unlabelled neighbours by the inner product of pooled,
L2-normalised backbone descriptors (``spino features``; exact search over the ``search`` nearest,
an image already taken by an earlier annotated image skipped). A round labels those neighbours
with the current heads (the same generator and settings as the pseudo-label store, so a
neighbour's label is the one the store would hold), then fine-tunes the semantic head: every step
one annotated sample and one pseudo-labelled neighbour, loss = ``labelled_weight`` x the first +
the second, each the head's own top-k cross-entropy on a random crop. Pixels whose confidence (the
mean softmax probability of their class) is under ``confidence_threshold`` carry no loss.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from spino.backbone import BackboneSpec
from spino.checkpoint import register_checkpoint_kind
from spino.classes import IGNORE, ClassSet
from spino.config import load, section
from spino.data.base import Dataset
from spino.data.io import read_image, write_csv
from spino.data.manifest import Entry, read_manifest
from spino.encoding import encode
from spino.errors import InputError
from spino.features import read_features
from spino.labelgen.head_kinds import HEAD_KINDS, head_settings
from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig
from spino.labelgen.train import CHECKPOINT_EVERY, HeadTrainer, load_head, samples_digest
from spino.progress import progress
from spino.provenance import file_digest
from spino.training_state import TrainingState, settings_hash

register_checkpoint_kind("self-training", "a self-training state")


@section("self_training")
class SelfTrainingConfig:
    enabled: bool
    rounds: int
    neighbours: int  # per annotated image (PASTEL: 20)
    search: int  # candidates searched per annotated image before duplicates are skipped (PASTEL: 30)
    epochs: int  # per round: passes over the annotated images, one neighbour per step
    lr: float
    labelled_weight: float
    confidence_threshold: float  # 0: every pseudo-labelled pixel counts
    seed: int

    @classmethod
    def from_dict(cls, data: dict) -> SelfTrainingConfig:
        return load(cls, data)


def nearest_neighbours(
    features: np.ndarray, queries: list[int], pool: list[int], count: int, search: int
) -> list[list[int]]:
    """For each query row, up to ``count`` rows of ``pool`` among its ``search`` most similar (inner
    product), in order of similarity, each pool row given to the first query that finds it."""
    if not pool:
        raise InputError("no unlabelled image to self-train on")
    similarity = features[queries] @ features[pool].T
    taken: set[int] = set()
    result = []
    for row in similarity:
        order = np.argsort(-row, kind="stable")[:search]
        chosen = [pool[j] for j in order if pool[j] not in taken][:count]
        taken.update(chosen)
        result.append(chosen)
    return result


def neighbours_of_annotated(
    entries: list[Entry], image_ids: list[str], features: np.ndarray, cfg: SelfTrainingConfig, source: str
) -> dict[str, list[tuple[str, float]]]:
    """Each annotated image's neighbours among the not-annotated images of its split, with similarities."""
    row = {image_id: i for i, image_id in enumerate(image_ids)}
    missing = [e.image_id for e in entries if e.image_id not in row]
    if missing:
        raise InputError(f"{source}: no descriptor for {len(missing)} images of the manifest, e.g. {missing[:3]}")
    annotated = [e for e in entries if e.annotated]
    splits = {e.split for e in annotated}
    pool = [row[e.image_id] for e in entries if e.split in splits and not e.annotated]
    queries = [row[e.image_id] for e in annotated]
    found = nearest_neighbours(features, queries, pool, cfg.neighbours, cfg.search)
    return {
        e.image_id: [(image_ids[j], float(features[q] @ features[j])) for j in js]
        for e, q, js in zip(annotated, queries, found)
    }


def write_neighbours(path: str | Path, neighbours: dict[str, list[tuple[str, float]]]) -> None:
    """One CSV row per (annotated image, neighbour): what the self-training learnt from, for a person to check."""
    rows = [(a, rank + 1, n, f"{s:.4f}") for a, found in neighbours.items() for rank, (n, s) in enumerate(found)]
    write_csv(path, ["annotated", "rank", "neighbour", "similarity"], rows)


def pseudo_target(semantic: np.ndarray, confidence: np.ndarray, threshold: float) -> np.ndarray:
    """A panoptic-encoded training target from a pseudo-label: its classes, unconfident pixels void."""
    masked = np.where(confidence.astype(np.float32) >= threshold, semantic, IGNORE).astype(np.uint8)
    return encode(masked, np.zeros(masked.shape, np.uint16))


def self_train(
    cfg: SelfTrainingConfig,
    labels: PseudoLabelConfig,
    semantic_checkpoint: str | Path,
    boundary_checkpoint: str | Path,
    labelled: list[tuple[np.ndarray, np.ndarray]],
    neighbour_paths: list[str],
    out: str | Path,
    loss_csv: str | Path,
    device: str = "cpu",
    workdir: str | Path | None = None,
) -> None:
    """``cfg.rounds`` rounds of labelling the neighbours and fine-tuning the semantic head on them and
    on the labelled samples; the last round's head is written to ``out``, every step to ``loss_csv``.
    With ``workdir``, each round's head and, every CHECKPOINT_EVERY steps, the training state are
    kept there: a killed run resumes in the round it was in (relabelling its neighbours with the
    round's first head, which gives the same labels) at its last state, to the same weights."""
    if not labelled:
        raise InputError("no annotated images to self-train on")
    _, meta = load_head(semantic_checkpoint, "semantic")
    trained = {k: v for k, v in meta["config"].items() if k in HEAD_KINDS["semantic"].settings.schema["properties"]}
    head_cfg = head_settings("semantic", {**trained, "epochs": cfg.epochs, "lr": cfg.lr})
    spec = BackboneSpec.from_dict(meta["backbone"])
    class_set = ClassSet.from_dict(meta["class_set"], source=str(semantic_checkpoint))
    # Only the classes are learnt from: every fusion drops the same small blobs, so the instance
    # splitting (which for fusion: embedding needs a head trained later) does not matter here.
    semantic_only = replace(labels, fusion="cca")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    with tempfile.TemporaryDirectory(prefix="spino-self-training-") as scratch:
        rounds_dir = Path(workdir or scratch)
        signature = settings_hash(
            asdict(cfg),
            asdict(semantic_only),
            file_digest(semantic_checkpoint),
            file_digest(boundary_checkpoint),
            samples_digest(labelled),
            neighbour_paths,
        )
        state, saved = TrainingState.load(rounds_dir / "self-training.last.pt", signature, "self-training")
        first_round = state.extra["round"] if saved else 1
        current = Path(semantic_checkpoint) if first_round == 1 else rounds_dir / f"round{first_round - 1}.pt"
        for round_ in range(first_round, cfg.rounds + 1):
            generator = LabelGenerator(current, boundary_checkpoint, semantic_only, device)
            pseudo = []
            for path in progress(neighbour_paths, f"self-training round {round_}: label neighbours"):
                label = generator(read_image(path))
                pseudo.append((path, pseudo_target(label.semantic, label.confidence, cfg.confidence_threshold)))
            trainer = HeadTrainer(head_cfg, spec, class_set, cfg.epochs * len(labelled), device)
            trainer.head.load_state_dict(load_head(current, "semantic")[0].state_dict())
            resumed = state.extra if saved and round_ == first_round else {}  # the interrupted round
            if resumed:
                rng.bit_generator.state = resumed["rng"]
            if resumed.get("round_step"):  # interrupted inside the round: its head, Adam and schedule too
                trainer.head.load_trainable_state(saved["model"])
                trainer.optimizer.load_state_dict(saved["optimizer"])
                trainer.schedule.load_state_dict(resumed["schedule"])
                order, done = resumed["order"], resumed["round_step"]
            else:
                order, done = [int(i) for _ in range(cfg.epochs) for i in rng.permutation(len(labelled))], 0
            for step in progress(range(done, len(order)), f"self-training round {round_}: fine-tune"):
                path, target = pseudo[int(rng.integers(len(pseudo)))]
                labelled_loss = trainer.loss(*labelled[order[step]], rng)
                pseudo_loss = trainer.loss(read_image(path), target, rng)
                lr = trainer.step(cfg.labelled_weight * labelled_loss + pseudo_loss)
                state.history.append((round_, step, labelled_loss.item(), pseudo_loss.item(), lr))
                state.step += 1
                if workdir is not None and (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < len(order):
                    state.extra = {
                        "round": round_,
                        "round_step": step + 1,
                        "order": order,
                        "schedule": trainer.schedule.state_dict(),
                        "rng": rng.bit_generator.state,
                    }
                    state.save(trainer.head, trainer.optimizer)
            current = Path(out) if round_ == cfg.rounds else rounds_dir / f"round{round_}.pt"
            trainer.save(current, spec)
            if workdir is not None:  # the next round starts from this head, with this generator state
                state.extra = {"round": round_ + 1, "round_step": 0, "rng": rng.bit_generator.state}
                state.save(trainer.head, trainer.optimizer, finished=round_ == cfg.rounds)
    write_csv(loss_csv, ["round", "step", "labelled_loss", "pseudo_loss", "lr"], state.history)


def self_train_on_neighbours(
    cfg: SelfTrainingConfig,
    labels: PseudoLabelConfig,
    dataset: Dataset,
    manifest: str | Path,
    features: str | Path,
    semantic_checkpoint: str | Path,
    boundary_checkpoint: str | Path,
    out: str | Path,
    neighbours_csv: str | Path,
    loss_csv: str | Path,
    device: str = "cpu",
    workdir: str | Path | None = None,
) -> tuple[int, int]:
    """Self-training as the workflow runs it: each annotated image's neighbours found among the
    descriptors (written to ``neighbours_csv``), then ``self_train``. The counts of annotated and
    neighbour images it trained on."""
    entries = read_manifest(manifest)
    ids, _, descriptors = read_features(features)
    neighbours = neighbours_of_annotated(entries, ids, descriptors, cfg, str(features))
    write_neighbours(neighbours_csv, neighbours)
    paths = {e.image_id: e.image for e in entries}
    labelled = [dataset.read_sample(e.record) for e in entries if e.annotated]
    unlabelled = [paths[n] for found in neighbours.values() for n, _ in found]
    self_train(
        cfg, labels, semantic_checkpoint, boundary_checkpoint, labelled, unlabelled, out, loss_csv, device, workdir
    )
    return len(labelled), len(unlabelled)
