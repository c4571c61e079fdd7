"""The ``spino`` command: one subcommand per workflow step, plus tools to inspect and export stores.

Workflow rules call these subcommands; every option maps onto a config key (config/README.md).
Errors in the input end the command with a one-line message naming the file and the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spino.classes import load_class_set
from spino.errors import InputError


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset-kind", required=True, help="cityscapes, kitti360, folder or demo")
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--classes", default=None, help="class set name or YAML (folder datasets)")
    p.add_argument("--splits", nargs="+", default=None, help="splits to use (default: all)")


def _open_dataset(args: argparse.Namespace):
    from spino.data import open_dataset

    return open_dataset(args.dataset_kind, args.dataset_root, args.splits, args.classes)


# -- workflow steps ----------------------------------------------------------------------------
def cmd_make_demo(args: argparse.Namespace) -> None:
    from spino.data.synthetic import DemoSpec, write_demo

    write_demo(args.out, DemoSpec(args.n_train, args.n_val, args.height, args.width, args.seed))


def cmd_index(args: argparse.Namespace) -> None:
    from spino.data.manifest import build_manifest, check_splits, choose_annotated, write_manifest

    records = _open_dataset(args).scan()
    annotated = choose_annotated(records, args.annotate_split, args.indices, args.ids, args.k, args.seed)
    entries = build_manifest(records, annotated)
    check_splits(entries, args.need_images, args.need_labels)  # choose_annotated took labelled images only
    write_manifest(args.out, entries)
    unlabelled = [e.image_id for e in entries if not e.has_gt]
    print(f"{args.out}: {len(entries)} images, {len(entries) - len(unlabelled)} with ground truth, "
          f"{len(annotated)} annotated: {', '.join(annotated)}")
    if unlabelled:
        print(f"{len(unlabelled)} images without labels (pseudo-labelled, never scored): {', '.join(unlabelled[:20])}"
              + (" ..." if len(unlabelled) > 20 else ""))


def cmd_features(args: argparse.Namespace) -> None:
    from spino.backbone import Backbone, BackboneSpec
    from spino.suggest import pooled_features, write_features

    records = _open_dataset(args).scan()
    spec = BackboneSpec.from_dict(json.loads(args.backbone))
    features = pooled_features(Backbone(spec), [r.image for r in records], tuple(args.input_size), _device(args.device))
    write_features(args.out, [r.image_id for r in records], [r.split for r in records], features,
                   {"backbone": json.dumps(spec.to_dict()), "input_size": list(args.input_size)})
    print(f"{args.out}: {features.shape[1]}-dimensional descriptors of {len(records)} images")


def cmd_suggest(args: argparse.Namespace) -> None:
    from spino.suggest import coverage, plot_suggestion, random_coverage, read_features, suggest, write_annotation

    ids, splits, features = read_features(args.features)
    pool = [i for i, split in enumerate(splits) if split == args.split]
    if not pool:
        raise InputError(f"{args.features}: no images of split {args.split!r} (splits: {sorted(set(splits))})")
    candidates = features[pool]
    chosen = suggest(candidates, args.k, args.method, args.seed)  # indices into pool
    random = random_coverage(candidates, args.k, args.seed)
    note = (f"spino suggest --method {args.method} --k {args.k} --seed {args.seed}: mean feature distance of the "
            f"{len(pool)} {args.split} images to the nearest suggested one {coverage(candidates, chosen):.4f} "
            f"(random choices: {random:.4f})")
    write_annotation(args.out, args.split, [ids[pool[i]] for i in chosen], note)
    if args.figure:
        paths = {r.image_id: r.image for r in _open_dataset(args).scan()}
        plot_suggestion(candidates, chosen, [paths[ids[i]] for i in pool], args.figure)
    print(f"{args.out}: {note}")


def cmd_self_train(args: argparse.Namespace) -> None:
    from spino.data.manifest import read_manifest
    from spino.labelgen.pseudolabel import PseudoLabelConfig
    from spino.labelgen.selftrain import SelfTrainingConfig, neighbours_of_annotated, self_train, write_neighbours
    from spino.suggest import read_features

    cfg = SelfTrainingConfig.from_dict(json.loads(args.settings))
    dataset = _open_dataset(args)
    entries = read_manifest(args.manifest)
    ids, _, features = read_features(args.features)
    neighbours = neighbours_of_annotated(entries, ids, features, cfg, str(args.features))
    write_neighbours(args.neighbours, neighbours)
    paths = {e.image_id: e.image for e in entries}
    labelled = [dataset.read_sample(e.record) for e in entries if e.annotated]
    unlabelled = [paths[n] for found in neighbours.values() for n, _ in found]
    labels = PseudoLabelConfig.from_dict(json.loads(args.labels))
    self_train(cfg, labels, args.semantic_head, args.boundary_head, labelled, unlabelled, args.out, args.losses, _device(args.device))
    print(f"{args.out}: semantic head self-trained for {cfg.rounds} round(s) on {len(labelled)} annotated and {len(unlabelled)} neighbour images")


def cmd_fit_primaps(args: argparse.Namespace) -> None:
    from spino.backbone import BackboneSpec
    from spino.data.manifest import read_manifest
    from spino.labelgen.primaps import PrimapsConfig, fit_primaps

    cfg = PrimapsConfig.from_dict(json.loads(args.settings))
    paths = [e.image for e in read_manifest(args.manifest) if e.split in cfg.fit_splits]
    class_set = _open_dataset(args).class_set
    fit_primaps(cfg, BackboneSpec.from_dict(json.loads(args.backbone)), paths, class_set, args.out, _device(args.device))
    print(f"{args.out}: {class_set.num_classes} PriMaPs prototypes fitted to the masks of {len(paths)} images")


def cmd_create_store(args: argparse.Namespace) -> None:
    from spino.data.manifest import read_manifest, select
    from spino.groundtruth import create_store_for

    entries = select(read_manifest(args.manifest), args.store_splits, with_gt=args.kind == "ground_truth")
    class_set = _open_dataset(args).class_set
    store = create_store_for(args.out, entries, class_set, args.images_per_shard, args.kind, args.confidence)
    print(f"{args.out}: {store.num_images} images in {store.num_shards} shards of {store.images_per_shard}")


def cmd_write_gt(args: argparse.Namespace) -> None:
    from spino.data.manifest import read_manifest
    from spino.groundtruth import write_ground_truth_shard
    from spino.store import LabelStore

    store = LabelStore(args.store)
    entries = {e.image_id: e for e in read_manifest(args.manifest)}
    write_ground_truth_shard(store, _open_dataset(args), entries, args.shard)
    _mark_shard_done(args.done, store, args.shard, {})


def cmd_gather(args: argparse.Namespace) -> None:
    from spino.store import LabelStore

    summary = {**LabelStore(args.store).finalize(), "complete": True}
    _touch(args.out, summary)
    print(json.dumps(summary))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from spino.evaluate import LabelSource, score
    from spino.metrics import write_scores

    gt = LabelSource(args.gt, load_class_set(args.classes) if args.classes else None)
    pred = LabelSource(args.prediction, gt.class_set)
    ids = None
    if args.manifest:
        from spino.data.manifest import read_manifest
        from spino.evaluate import common_ids

        entries = {e.image_id: e for e in read_manifest(args.manifest)}
        unknown = [i for i in common_ids(pred, gt) if i not in entries]
        if unknown:
            raise InputError(f"{args.manifest}: images of {args.prediction} missing from the manifest, e.g. {unknown[:3]}")
        ids = [
            i for i in common_ids(pred, gt)
            if not (args.exclude_annotated and entries[i].annotated) and (not args.splits or entries[i].split in args.splits)
        ]
        if not ids:
            raise InputError(f"{args.prediction}: no images left to score in splits {args.splits or 'all'} "
                             f"{'without the annotated ones' if args.exclude_annotated else ''}")
    elif args.exclude_annotated or args.splits:
        raise InputError("--exclude-annotated and --splits need --manifest (which images are annotated, which split)")
    stats, mapping = score(pred, gt, ids, args.matching)
    summary = write_scores(stats, gt.class_set, args.json, args.csv, mapping)
    a, t, s = summary["all"], summary["things"], summary["stuff"]
    print(
        f"{args.prediction}: {stats.images} images  PQ {100 * a['pq']:.1f}  SQ {100 * a['sq']:.1f}  "
        f"RQ {100 * a['rq']:.1f}  | things PQ {100 * t['pq']:.1f}  stuff PQ {100 * s['pq']:.1f}  "
        f"| mIoU {100 * summary['miou']:.1f}  accuracy {100 * summary['accuracy']:.1f}  (matching: {summary['matching']})"
    )


def cmd_train_head(args: argparse.Namespace) -> None:
    from spino.backbone import BackboneSpec
    from spino.data.manifest import read_manifest
    from spino.labelgen.train import HeadConfig, train_head

    dataset = _open_dataset(args)
    annotated = [e for e in read_manifest(args.manifest) if e.annotated]
    if not annotated:
        raise InputError(f"{args.manifest}: no annotated images")
    samples = [dataset.read_sample(e.record) for e in annotated]
    cfg = HeadConfig.from_dict(args.kind, json.loads(args.head))
    spec = BackboneSpec.from_dict(json.loads(args.backbone))
    train_head(cfg, spec, samples, dataset.class_set, args.checkpoint, args.losses, _device(args.device))
    print(f"{args.checkpoint}: {args.kind} head trained on {len(samples)} images")


def _device(name: str) -> str:
    """'auto' is the first GPU when there is one, else the CPU."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cmd_pseudo_label(args: argparse.Namespace) -> None:
    from spino.data.manifest import read_manifest
    from spino.labelgen.pseudolabel import LabelGenerator, PseudoLabelConfig, write_pseudo_label_shard
    from spino.store import LabelStore

    device = _device(args.device)
    if args.primaps:
        from spino.labelgen.primaps import load_primaps

        generator = load_primaps(args.primaps, device)
    elif args.semantic_head and args.boundary_head and args.settings:
        settings = PseudoLabelConfig.from_dict(json.loads(args.settings))
        generator = LabelGenerator(args.semantic_head, args.boundary_head, settings, device, args.embedding_head)
    else:
        raise InputError("pseudo-label needs --primaps, or --semantic-head, --boundary-head and --settings")
    store = LabelStore(args.store)
    paths = {e.image_id: e.image for e in read_manifest(args.manifest)}
    report = write_pseudo_label_shard(store, generator, paths, args.shard, args.spoco)
    report["device"] = device
    print(json.dumps(_mark_shard_done(args.done, store, args.shard, report)))


def cmd_fetch_weights(args: argparse.Namespace) -> None:
    from spino.backbone import fetch_weights

    out = args.out or Path("resources/weights") / f"{args.name}.safetensors"
    print(f"{fetch_weights(args.name, out)}: weights of {args.name}; set backbone.weights to this path")


def cmd_train_panoptic(args: argparse.Namespace) -> None:
    import os
    import subprocess

    if args.gpus > 1 and "LOCAL_RANK" not in os.environ:
        # One process per GPU on this node; each re-enters this command under torchrun.
        argv = sys.argv[1:]
        i = argv.index("--gpus")
        argv[i + 1] = "1"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.gpus}", "-m", "spino", *argv]
        raise SystemExit(subprocess.call(cmd))
    from spino.data.manifest import read_manifest
    from spino.panoptic.model import ModelConfig
    from spino.panoptic.sampler import samples_from
    from spino.panoptic.train import TrainConfig, train_panoptic
    from spino.provenance import file_digest
    from spino.store import LabelStore

    entries = read_manifest(args.manifest)
    gt, pseudo = LabelStore(args.ground_truth), LabelStore(args.pseudo_labels)
    annotated = [e.image_id for e in entries if e.annotated]
    pseudo_ids = set(pseudo.image_ids)
    train_ids = [e.image_id for e in entries if e.split in args.train_splits and not e.annotated and e.image_id in pseudo_ids]
    val_ids = [e.image_id for e in entries if e.split in args.val_splits and e.has_gt and not e.annotated]
    train_panoptic(
        TrainConfig.from_dict(json.loads(args.train)),
        ModelConfig.from_dict(json.loads(args.model), json.loads(args.backbone)),
        gt.class_set,
        samples_from(gt, annotated),
        samples_from(pseudo, train_ids),
        samples_from(gt, val_ids),
        args.workdir,
        args.out,
        args.device,
        provenance={"manifest": file_digest(args.manifest), "ground_truth": gt.digest, "pseudo_labels": pseudo.digest},
        workers=args.workers,
    )


def cmd_predict(args: argparse.Namespace) -> None:
    from spino.panoptic.predict import write_prediction_shard
    from spino.panoptic.train import load_model
    from spino.store import LabelStore

    device = _device(args.device)
    model, class_set, postprocess = load_model(args.checkpoint, device)
    store = LabelStore(args.store)
    n = write_prediction_shard(store, model, class_set, postprocess, args.shard)
    _mark_shard_done(args.done, store, args.shard, {"images": n, "device": device})


def cmd_report(args: argparse.Namespace) -> None:
    from spino.report import write_report

    print(f"{write_report(args.results, args.config, args.out)}: report written")


# -- tools ---------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> None:
    from spino.store import LabelStore

    store = LabelStore(args.store)
    missing = store.missing_shards()
    damaged = store.damaged_shards(content=args.verify)
    info = {
        "path": str(store.path),
        "kind": store.meta.get("kind"),
        "images": store.num_images,
        "shape": [store.num_images, store.height, store.width],
        "images_per_shard": store.images_per_shard,
        "shards": store.num_shards,
        "missing_shards": missing,
        "damaged_shards": {str(i): problem for i, problem in damaged.items()},
        "complete": bool(store.meta.get("complete")) and not missing and not damaged,
        "verified": "sizes and sha256" if args.verify else "sizes",
        "digest": store.meta.get("digest"),
        "confidence": store.has_confidence,
        "class_set": store.class_set.name,
        "classes": list(store.class_set.names),
        "things": [store.class_set.names[i] for i in store.class_set.thing_ids],
    }
    if args.counts:
        info["counts"] = _counts(store)
    print(json.dumps(info, indent=2))


def _counts(store) -> dict:
    """Pixels and segments per class over the written shards."""
    import numpy as np

    from spino.encoding import LABEL_DIVISOR

    pixels = np.zeros(256, np.int64)
    segments = np.zeros(256, np.int64)
    done = set(range(store.num_shards)) - set(store.missing_shards())
    for i in sorted(done):
        pan = store.read_shard(i)
        pixels += np.bincount((pan // LABEL_DIVISOR).ravel(), minlength=256)[:256]
        for image in pan:
            segments += np.bincount(np.unique(image) // LABEL_DIVISOR, minlength=256)[:256]
    names = list(store.class_set.names)
    return {
        name: {"pixels": int(pixels[i]), "segments": int(segments[i])} for i, name in enumerate(names)
    } | {"ignore": {"pixels": int(pixels[255])}}


def cmd_inspect(args: argparse.Namespace) -> None:
    from spino.data.io import read_image, write_png
    from spino.store import LabelStore
    from spino.viz import panel

    store = LabelStore(args.store)
    index = store.index_of(args.image_id) if args.image_id else args.index
    if not 0 <= index < store.num_images:
        raise InputError(f"{args.store}: index {index} out of range (0..{store.num_images - 1})")
    paths = store.meta.get("image_paths")
    image = read_image(paths[index]) if paths and Path(paths[index]).is_file() else None
    write_png(args.out, panel(image, store.panoptic(index), store.class_set))
    print(f"{args.out}: {store.image_ids[index]}")


def cmd_export(args: argparse.Namespace) -> None:
    from spino.export import export_coco, export_gtfine
    from spino.store import LabelStore

    store = LabelStore(args.store)
    n = (export_gtfine if args.format == "gtfine" else export_coco)(store, args.out)
    print(f"{args.out}: {n} images exported as {args.format}")


def _mark_shard_done(done: Path | None, store, index: int, payload: dict) -> dict:
    """The shard job's marker: what it wrote, with each shard file's size and sha256.

    The workflow compares these with the files (spino.store.marker_problem) to plan a shard whose
    file was lost or changed again.
    """
    marker = {"store": str(store.path), "shard": index, **payload, "files": store.shard_digest(index)}
    _touch(done, marker)
    return marker


def _touch(path: Path | None, payload: dict) -> None:
    if path is None:
        return
    from spino.data.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spino", description=__doc__.splitlines()[0])
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: all cores)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-demo", help="write the synthetic demo dataset (folder layout)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n-train", type=int, default=40)
    p.add_argument("--n-val", type=int, default=12)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_demo)

    p = sub.add_parser("features", help="one descriptor per image: frozen backbone features, mean-pooled, L2-normalised (HDF5)")
    _dataset_args(p)
    p.add_argument("--backbone", required=True, help="backbone settings as JSON (config backbone)")
    p.add_argument("--input-size", type=int, nargs=2, required=True, metavar=("H", "W"), help="images are resized to this")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("suggest", help="the k images of a split to annotate: the best coverage of the image descriptors")
    _dataset_args(p)
    p.add_argument("--features", required=True, type=Path, help="written by `spino features`")
    p.add_argument("--split", default="train")
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--method", default="kmeans", help="kmeans (typical images of k clusters) or kcenter (farthest-first)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="YAML with the annotation section a config takes")
    p.add_argument("--figure", type=Path, help="PNG: the suggested images and a 2-D projection of all")
    p.set_defaults(func=cmd_suggest)

    p = sub.add_parser("index", help="list a dataset's images and choose the annotated ones (manifest CSV)")
    _dataset_args(p)
    p.add_argument("--annotate-split", default="train")
    choice = p.add_mutually_exclusive_group(required=True)
    choice.add_argument("--indices", type=int, nargs="+", help="indices into the sorted labelled images")
    choice.add_argument("--ids", nargs="+", help="image ids")
    choice.add_argument("--k", type=int, help="draw k images with --seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--need-images", nargs="*", default=[], metavar="SPLIT", help="splits that must have images")
    p.add_argument("--need-labels", nargs="*", default=[], metavar="SPLIT", help="splits that must have labelled images")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("create-store", help="create an empty sharded label store for manifest images")
    _dataset_args(p)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--store-splits", nargs="+", default=None, help="splits whose images the store holds")
    p.add_argument("--kind", required=True, choices=["ground_truth", "pseudo_labels", "predictions"])
    p.add_argument("--images-per-shard", type=int, required=True)
    p.add_argument("--confidence", action="store_true", help="add a per-pixel confidence array")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_create_store)

    p = sub.add_parser("write-gt", help="write one shard of a ground-truth store")
    _dataset_args(p)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--done", type=Path, help="marker file written when the shard is complete")
    p.set_defaults(func=cmd_write_gt)

    p = sub.add_parser("train-head", help="train the semantic, boundary or embedding head on the annotated images")
    _dataset_args(p)
    p.add_argument("kind", choices=["semantic", "boundary", "embedding"])
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--head", required=True, help="head settings as JSON (config semantic_head / boundary_head / embedding_head)")
    p.add_argument("--backbone", required=True, help="backbone settings as JSON (config backbone)")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--losses", required=True, type=Path, help="per-step loss CSV")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=cmd_train_head)

    p = sub.add_parser("self-train", help="fine-tune the semantic head on the pseudo-labels of the annotated images' nearest neighbours")
    _dataset_args(p)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path, help="image descriptors written by `spino features`")
    p.add_argument("--semantic-head", required=True, type=Path)
    p.add_argument("--boundary-head", required=True, type=Path)
    p.add_argument("--settings", required=True, help="self-training settings as JSON (config self_training)")
    p.add_argument("--labels", required=True, help="pseudo-label settings as JSON (config pseudo_labels)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, type=Path, help="the self-trained semantic head")
    p.add_argument("--neighbours", required=True, type=Path, help="CSV: each annotated image's neighbours")
    p.add_argument("--losses", required=True, type=Path, help="per-step loss CSV")
    p.set_defaults(func=cmd_self_train)

    p = sub.add_parser("fit-primaps", help="label-free: fit one prototype per class to the principal masks of the images (PriMaPs)")
    _dataset_args(p)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--settings", required=True, help="PriMaPs settings as JSON (config primaps)")
    p.add_argument("--backbone", required=True, help="backbone settings as JSON (config backbone)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, type=Path, help="prototype checkpoint")
    p.set_defaults(func=cmd_fit_primaps)

    p = sub.add_parser("pseudo-label", help="pseudo-label the images of one shard of a store")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--semantic-head", type=Path)
    p.add_argument("--boundary-head", type=Path)
    p.add_argument("--settings", help="pseudo-label settings as JSON (config pseudo_labels)")
    p.add_argument("--embedding-head", type=Path, help="fusion: embedding: instances by clustering this head's embeddings")
    p.add_argument("--spoco", type=Path, help="also write /raw, /embeddings, /segmentation of the shard to this HDF5 file")
    p.add_argument("--primaps", type=Path, help="label by PriMaPs prototypes (spino fit-primaps) instead of the heads")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--done", type=Path, help="report JSON written when the shard is complete")
    p.set_defaults(func=cmd_pseudo_label)

    p = sub.add_parser("fetch-weights", help="download a timm backbone's weights for offline compute nodes")
    p.add_argument("--name", required=True, help="timm model name, e.g. vit_base_patch14_dinov2.lvd142m")
    p.add_argument("--out", type=Path, help="default: resources/weights/<name>.safetensors")
    p.set_defaults(func=cmd_fetch_weights)

    p = sub.add_parser("train-panoptic", help="train the panoptic model on pseudo-labels mixed with ground truth")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--pseudo-labels", required=True, type=Path)
    p.add_argument("--ground-truth", required=True, type=Path)
    p.add_argument("--train-splits", nargs="+", required=True)
    p.add_argument("--val-splits", nargs="+", default=[])
    p.add_argument("--model", required=True, help="model settings as JSON (config panoptic.model)")
    p.add_argument("--train", required=True, help="training settings as JSON (config panoptic.train)")
    p.add_argument("--backbone", required=True, help="backbone settings as JSON (config backbone)")
    p.add_argument("--workdir", required=True, type=Path, help="checkpoints to resume from, loss and validation CSVs")
    p.add_argument("--out", required=True, type=Path, help="final checkpoint")
    p.add_argument("--device", default="auto")
    p.add_argument("--gpus", type=int, default=1, help="GPUs on this node; more than one launches torchrun")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes building batches per GPU (0: none); changes no batch")
    p.set_defaults(func=cmd_train_panoptic)

    p = sub.add_parser("predict", help="panoptic predictions for one shard of a store")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--done", type=Path)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="the run's report: scores, curves, timings, overlays, config")
    p.add_argument("--results", required=True, type=Path, help="results/<run>")
    p.add_argument("--config", required=True, help="the run's config as JSON")
    p.add_argument("--out", required=True, type=Path, help="report folder (report.html + PNGs)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("gather", help="check every shard of a store and mark it complete")
    p.add_argument("store", type=Path)
    p.add_argument("--out", type=Path, help="summary JSON")
    p.set_defaults(func=cmd_gather)

    p = sub.add_parser("evaluate", help="PQ/SQ/RQ and mIoU of a store or gtFine folder against ground truth")
    p.add_argument("prediction", type=Path, help="label store or folder of *_gtFine_instanceIds.png")
    p.add_argument("--gt", required=True, type=Path, help="ground-truth label store (or gtFine folder with --classes)")
    p.add_argument("--classes", default=None, help="class set when --gt is a folder")
    p.add_argument("--manifest", type=Path, help="the run's manifest (for --exclude-annotated and --splits)")
    p.add_argument("--exclude-annotated", action="store_true", help="leave out the manifest's annotated images")
    p.add_argument("--splits", nargs="+", help="score only images of these splits (default: all)")
    p.add_argument("--matching", default="none", choices=["none", "hungarian"],
                   help="hungarian: the prediction's ids are clusters (label-free labels), matched one-to-one to the classes first")
    p.add_argument("--json", required=True, type=Path)
    p.add_argument("--csv", required=True, type=Path)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="shape, shards, completeness and class set of a label store")
    p.add_argument("store", type=Path)
    p.add_argument("--counts", action="store_true", help="also count pixels and segments per class")
    p.add_argument("--verify", action="store_true", help="check every shard file's sha256, not only its size")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("inspect", help="picture of one image of a store: image | labels | overlay")
    p.add_argument("store", type=Path)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=0)
    which.add_argument("--image-id")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("export", help="export a store as Cityscapes gtFine PNGs or COCO panoptic")
    p.add_argument("store", type=Path)
    p.add_argument("--format", choices=["gtfine", "coco"], default="gtfine")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except InputError as err:  # a user's mistake: one line naming the file; anything else is a bug with its traceback
        if args.traceback:
            raise
        print(f"spino {args.command}: error: {_message(err)}", file=sys.stderr)
        return 1
    return 0


def _message(err: InputError) -> str:
    """The error's own message, also when a DataLoader worker raised it (PyTorch then wraps the
    worker's traceback into the message; its last line is ``module.ErrorType: message``)."""
    text = str(err)
    if "\nOriginal Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text
