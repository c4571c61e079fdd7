"""The embedding head (SPOCO): ``dim`` embedding channels, a push-pull loss on the labelled instances
and agreement with a flipped, jittered view elsewhere."""

from __future__ import annotations

import numpy as np
import torch

from spino.labelgen.embedding import instance_targets, sparse_instances, with_coordinates
from spino.labelgen.head_kinds.base import HeadKindTraining
from spino.losses import discriminative_loss
from spino.transforms import color_jitter


class EmbeddingHead(HeadKindTraining):
    def out_channels(self) -> int:
        return self.cfg.dim

    def target(self, label: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(instance_targets(label, self.class_set))

    def labelling_output(self, logits: torch.Tensor) -> torch.Tensor:
        """The embeddings with the pixel positions added (as the loss saw them)."""
        return with_coordinates(logits, self.cfg.coordinates)

    def training_samples(self, samples):
        """Only ``instance_fraction`` of each image's instances labelled, the others unlabelled: a
        fixed choice for the run, as an annotator's would be."""
        if self.cfg.instance_fraction >= 1:
            return samples
        labelled = np.random.default_rng((self.cfg.seed, 1))
        return [
            (image, sparse_instances(panoptic, self.class_set, self.cfg.instance_fraction, labelled))
            for image, panoptic in samples
        ]

    def loss(self, trainer, crop, logits, target, rng) -> torch.Tensor:
        """Push-pull on the labelled instances; elsewhere, agreement with a flipped, jittered view's
        embeddings taken without gradient (SPOCO's consistency, with the network as its own teacher)."""
        cfg = self.cfg
        embeddings = with_coordinates(logits[0], cfg.coordinates)
        loss = discriminative_loss(embeddings, target, cfg.delta_var, cfg.delta_dist)
        unlabelled = target == 0
        if cfg.consistency > 0 and unlabelled.any():
            with torch.no_grad():
                view = color_jitter(crop[0].flip(-1).cpu(), rng, cfg.color_jitter)[None].to(trainer.device)
                mirrored = trainer.head(trainer.backbone(view), trainer.out_size, trainer.grid)[0].flip(-1)
                if cfg.coordinates > 0:  # channel 0 is then an x offset, which a mirror reverses
                    mirrored[0] = -mirrored[0]
                teacher = with_coordinates(mirrored, cfg.coordinates)
            loss = loss + cfg.consistency * ((embeddings - teacher) ** 2).sum(0)[unlabelled].mean()
        return loss
