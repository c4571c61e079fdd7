"""Instance splitting alone: the thing blobs of the ground-truth semantic map cut by each method.

    python benchmarks/instance_splitting.py --config config/examples/cityscapes-mini.yaml --split val \\
        --embedding-head 10%=results/e10.pt --embedding-head 100%=results/e100.pt --bandwidth 1.5 --bandwidth 3

Reads the run's heads, manifest and ground-truth store from results/<run>/ (run the workflow up to
the heads first; train embedding heads with ``spino train-head embedding``). With the true classes
given, what is left is how each method separates the instances of a blob: none (each blob one
instance), the boundary head's interior at the config's scales and threshold, cut into connected
components (cca, SPINO), and mean shift of each embedding head's pixel embeddings (SPOCO) at each
``--bandwidth`` (default: the config's). Tune on a split the report does not score. The same
minimum sizes apply to all. Prints things PQ, SQ and RQ; what each costs as a whole pseudo-label is
benchmarks/label_quality.py's to measure (``fusion=embedding embedding_head=PATH``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch
from scored_run import add_run_arguments, open_scored_run

from spino.config import load
from spino.data.io import read_image
from spino.encoding import semantic_of
from spino.labelgen.embedding import resize_embeddings
from spino.labelgen.fusion import EmbeddingClusterConfig, fuse
from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig
from spino.metrics import PanopticStats
from spino.transforms import image_tensor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--embedding-head", action="append", default=[], help="NAME=PATH of a trained embedding head")
    p.add_argument("--bandwidth", action="append", type=float, default=[], help="mean-shift radius (repeatable)")
    args = p.parse_args()
    run = open_scored_run(args)
    config, results, entries, gt = run.config, run.results, run.entries, run.gt
    cfg = PseudoLabelConfig.from_dict({**config["pseudo_labels"], "fusion": "cca"})
    heads = (results / "heads" / "semantic.pt", results / "heads" / "boundary.pt")
    boundary = LabelGenerator(*heads, cfg)
    embedders = {
        name: LabelGenerator(*heads, replace(cfg, fusion="embedding"), heads={"embedding": path})
        for name, path in (pair.split("=", 1) for pair in args.embedding_head)
    }
    class_set, minimum = boundary.class_set, boundary.min_pixels
    own = load(EmbeddingClusterConfig, config["pseudo_labels"].get("embedding", {}), "pseudo_labels.embedding")
    bandwidths = args.bandwidth or [own.bandwidth]
    clusterings = {(name, b): replace(own, bandwidth=b) for name in embedders for b in bandwidths}
    methods = [
        "one instance per blob",
        "boundary head, cca",
        *(f"embedding head {n}, bandwidth {b}" for n, b in clusterings),
    ]
    stats = {m: PanopticStats(class_set.num_classes) for m in methods}
    print(
        f"{config['run']}: {len(entries)} {args.split} images, ground-truth classes, threads {torch.get_num_threads()}"
    )
    for entry in entries:
        image = read_image(entry.image)
        truth = gt.panoptic(gt.index_of(entry.image_id))
        semantic = semantic_of(truth)
        nothing_inside = np.zeros(semantic.shape, bool)
        cuts = {
            "one instance per blob": fuse(semantic, nothing_inside, class_set, minimum, "cca"),
            "boundary head, cca": fuse(semantic, boundary(image).interior, class_set, minimum, "cca"),
        }
        for name, embedder in embedders.items():
            with torch.no_grad():
                embeddings = resize_embeddings(
                    embedder.head_output("embedding", image_tensor(image)[None]), semantic.shape
                )
            for b in bandwidths:
                cuts[f"embedding head {name}, bandwidth {b}"] = fuse(
                    semantic,
                    nothing_inside,
                    class_set,
                    minimum,
                    "embedding",
                    embedding=embeddings,
                    settings=clusterings[name, b],
                )
        for method, found in cuts.items():
            stats[method].update(truth, found, class_set)
    print(f"{'instances from':<44}{'PQth':>7}{'SQth':>7}{'RQth':>7}")
    for method in methods:
        things = stats[method].summary(class_set)["things"]
        print(f"{method:<44}{100 * things['pq']:>7.1f}{100 * things['sq']:>7.1f}{100 * things['rq']:>7.1f}")


if __name__ == "__main__":
    main()
