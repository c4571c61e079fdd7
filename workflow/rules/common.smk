# Config helpers, paths and target lists shared by all rules.

import os
import shutil
import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError

from spino.config import images_per_shard
from spino.data import dataset_files
from spino.data.corrections import export_file
from spino.data.unlabelled import unlabelled_files
from spino.deploy.media import sources
from spino.labelgen.head_kinds import HEAD_KINDS, heads_trained
from spino.labelgen.labellers import LABELLERS
from spino.provenance import command_code_digest, listing_digest
from spino.store import STORE_NAMES, remove_damaged_markers, shard_count
from spino.workflow_config import settings_file

# `spino` comes from the environment that runs Snakemake (a venv, the conda env of environment.yaml,
# or workflow/envs/spino.yaml with --use-conda); when that environment is not activated, its bin/.
if shutil.which("spino") is None:

    shell.prefix(f'set -euo pipefail; export PATH={Path(sys.executable).parent}:"$PATH"; ')

# The software of every rule that runs `spino` (used with --use-conda; see docs/clusters.md for Apptainer).
SPINO_ENV = "../envs/spino.yaml"

RUN = config["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
STORES = list(STORE_NAMES)
# What labels the store (spino.labelgen.labellers). Label-free pseudo-labels are clusters without
# instances: scored after matching, no panoptic stages.
LABELLER = LABELLERS[config["labelgen"]]
LABEL_FREE = LABELLER.label_free
# A model with no split to be scored on (panoptic.eval_splits: []) is trained, not predicted.
SCORES_MODEL = not LABEL_FREE and bool(config["panoptic"]["eval_splits"])
STORES_IN_USE = STORES if SCORES_MODEL else STORES[:2]
SCORED_STORES = STORES_IN_USE[1:]  # pseudo_labels, and predictions where the model is scored
HEADS = f"{RESULTS}/heads"
SELF_TRAINING = f"{RESULTS}/self_training"
PRIMAPS = f"{RESULTS}/primaps/prototypes.pt"
SPOCO = f"{RESULTS}/spoco"  # SPOCO-style HDF5 per shard (fusion: embedding)
PANOPTIC = f"{RESULTS}/panoptic"
# The heads this run trains (spino.labelgen.head_kinds): semantic and boundary, and those its fusion needs.
HEADS_TRAINED = heads_trained(config["pseudo_labels"]["fusion"]) if "heads" in LABELLER.inputs else []
EMBEDDING_FUSION = "embedding" in HEADS_TRAINED
# The semantic head that labels the store: the self-trained one when self-training is on.
LABELLING_SEMANTIC_HEAD = (
    f"{SELF_TRAINING}/semantic.pt" if config["self_training"]["enabled"] else f"{HEADS}/semantic.pt"
)

if config["annotation"].get("k") == 0 and not LABEL_FREE:
    raise ValueError("annotation.k: 0 leaves the heads nothing to train on; it needs labelgen: primaps")
if LABEL_FREE and config["self_training"]["enabled"]:
    raise ValueError("self_training fine-tunes the semantic head, which labelgen: primaps does not train")


# A shard file lost or changed after its job finished: that job's marker is removed, so Snakemake
# plans exactly that shard again (see spino.store.remove_damaged_markers).
for marker, problem in remove_damaged_markers(Path(RESULTS).glob("*.shards/*.json")).items():
    print(f"spino: {problem}: removed {marker}, its shard job will rerun", file=sys.stderr)


wildcard_constraints:
    store="|".join(STORES),
    shard=r"\d+",


def settings(name, value):
    """A config section as the path of a JSON file named by its digest (spino.workflow_config.settings_file),
    passed to a command in place of the JSON: a changed setting is a changed param, which reruns the
    rule, and `snakemake -n -p` prints each job's command on a line, not the config."""
    return settings_file(f"{RESULTS}/settings", name, value)


PSEUDO_LABEL_SETTINGS = settings("pseudo_labels", config["pseudo_labels"])


def code(command):
    """Digest of the code `spino <command>` runs (its imports, followed through the package), as a
    param: editing any module the rule runs reruns it, and a checkout moved elsewhere reruns nothing."""
    return command_code_digest(command)


def gpus(stage):
    """GPUs per job of a stage (config `gpus`), declared as the job's `gpu` resource: the one number
    that bounds local GPU jobs (profiles/default: --resources gpu=1) and that SLURM is asked for."""
    return config["gpus"][stage]


def head_threads():
    """Threads of a head's training job: at most 8 (scaled down to --cores), and on the CPU the cores
    shared among the heads, which then train at once. On 2 cores, measured the same day: the demo's
    two heads 103 s side by side against 183 s one after the other, cityscapes-mini's paper-width heads
    865 s against 938 s (its boundary head, twice the semantic's work, ends alone on one core). On
    GPUs (config gpus.heads) they take turns anyway."""
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores (a dry run without the profile)
        return 8
    return 8 if gpus("heads") else max(1, min(8, cores // max(1, len(HEADS_TRAINED))))


def device(stage):
    """A stage given no GPU runs on the CPU even where one is visible, so that it never shares a
    GPU it was not scheduled on; given one, it takes the GPU (or says it fell back to the CPU)."""
    return "auto" if gpus(stage) else "cpu"


def dataset_listing():
    """Digest of the names, sizes and mtimes of the dataset's files and of dataset.unlabelled's: adding,
    removing or editing an image or label reruns the index (the demo is an output of make_demo instead)."""
    d = config["dataset"]
    extra = listing_digest(unlabelled_files(d["unlabelled"]), ".") if d["unlabelled"] else ""
    if d["kind"] == "demo":
        return f"generated by make_demo {extra}".strip()
    return listing_digest(dataset_files(d["kind"], d["root"], d["splits"]), d["root"]) + extra


# Listed once per plan: the index and image_features both take it (a walk and a stat per file).
DATASET_LISTING = dataset_listing()


def generated_dataset():
    """The demo dataset as an input (make_demo writes it); a real dataset is no job's output."""
    return config["dataset"]["root"] if config["dataset"]["kind"] == "demo" else []


def segment_media(wildcards):
    """The files `snakemake segment` reads (config `segment.inputs`), listed when its job is planned:
    a new or changed image reruns it. Inputs inside the generated demo dataset are covered by the
    dataset itself (make_demo's output), whose files do not exist before it runs."""
    inputs = config["segment"]["inputs"]
    if not inputs:
        raise ValueError("segment.inputs is empty: name the images, folders, globs or videos to segment")
    generated = generated_dataset()
    root = Path(generated).resolve() if generated else None
    own = [i for i in inputs if root is None or not Path(i).resolve().is_relative_to(root)]
    return ([generated] if len(own) < len(inputs) else []) + [str(s.path) for s in sources(own)]


def segment_track_args():
    """`spino segment`'s tracking options from config `segment.track` (schema-checked booleans
    and numbers)."""
    t = config["segment"]["track"]
    if not (t["enabled"] or t["sequence"]):
        return []
    args = ["--sequence" if t["sequence"] else "--track", "--max-gap", str(t["max_gap"])]
    args += ["--min-overlap", str(t["min_overlap"])] + ([] if t["motion"] else ["--no-motion"])
    return args


def dataset_args():
    """Command-line options that open the configured dataset."""
    d = config["dataset"]
    args = ["--dataset-kind", d["kind"], "--dataset-root", d["root"], "--splits", *d["splits"]]
    if d.get("classes"):
        args += ["--classes", d["classes"]]
    if d.get("things") is not None:
        args += ["--things", *d["things"]]
    return args


def unlabelled_args():
    """The options that add dataset.unlabelled's images, to the annotation split, for the commands that
    list the dataset's images themselves (index, features, suggest)."""
    specs = config["dataset"]["unlabelled"]
    return ["--unlabelled", *specs, "--unlabelled-split", config["annotation"]["split"]] if specs else []


def image_size_args():
    """The working size every store holds its images at (dataset.image_size; default: the most common)."""
    size = config["dataset"]["image_size"]
    return ["--image-size", *map(str, size)] if size else []


def splits_needing_images():
    """Splits that pseudo-labelling or panoptic training reads: an empty one fails at the index."""
    panoptic = [] if LABEL_FREE else config["panoptic"]["train_splits"]
    return sorted(set(config["pseudo_labels"]["splits"] + panoptic))


def splits_needing_labels():
    """Splits that are scored: without ground truth they fail at the index."""
    if LABEL_FREE:
        return config["evaluation"]["splits"] or []
    return config["panoptic"]["eval_splits"]


def manifest_entries():
    """The manifest's rows (after the index checkpoint has run)."""
    return pd.read_csv(checkpoints.index.get().output.manifest, keep_default_na=False)


def store_image_count(store):
    rows = manifest_entries()
    if store == "ground_truth":
        return int((rows["has_gt"] == 1).sum())
    splits = config["pseudo_labels"]["splits"] if store == "pseudo_labels" else config["panoptic"]["eval_splits"]
    return int(rows["split"].isin(splits).sum())


def shard_markers(store):
    """One marker per shard of a store; the shard count follows from the manifest."""
    n = store_image_count(store)
    per_shard = shard_size(store)
    return [f"{RESULTS}/{store}.shards/{i}.json" for i in range(shard_count(n, per_shard))]


def shard_size(store):
    """Images per shard (= per job) of a store: config stores.images_per_shard."""
    return images_per_shard(config["stores"]["images_per_shard"], store)


def final_targets():
    """Every artifact of the run, not only the report. Snakemake regenerates a missing target, but it
    leaves an intermediate file missing when what was made from it is up to date: a lost model or
    shard marker would otherwise go unnoticed (the markers: all_shard_markers)."""
    if LABEL_FREE:
        return [
            f"{RESULTS}/manifest.csv",
            PRIMAPS,
            *expand(f"{RESULTS}/scores/pseudo_labels.{{ext}}", ext=["json", "csv"]),
            *expand(f"{RESULTS}/{{store}}.complete.json", store=STORES_IN_USE),
        ]
    return [
        f"{RESULTS}/manifest.csv",
        *expand(f"{HEADS}/{{head}}{{suffix}}", head=HEADS_TRAINED, suffix=[".pt", "_losses.csv"]),
        *(
            expand(f"{SELF_TRAINING}/{{name}}", name=["semantic.pt", "neighbours.csv", "losses.csv"])
            if config["self_training"]["enabled"]
            else []
        ),
        *expand(f"{PANOPTIC}/{{name}}", name=["model.pt", "losses.csv", "validation.csv"]),
        *expand(f"{RESULTS}/scores/{{store}}.{{ext}}", store=SCORED_STORES, ext=["json", "csv"]),
        f"{RESULTS}/report/report.html",
        *expand(f"{RESULTS}/{{store}}.complete.json", store=STORES_IN_USE),
    ]


def all_shard_markers(wildcards):
    """The done-marker of every shard of every store (known once the index has run)."""
    markers = [marker for store in STORES_IN_USE for marker in shard_markers(store)]
    if EMBEDDING_FUSION:  # each pseudo-label job also writes its shard's SPOCO HDF5 file
        markers += [
            m.replace("pseudo_labels.shards", "spoco").replace(".json", ".h5") for m in shard_markers("pseudo_labels")
        ]
    return markers


def annotation_args():
    a = config["annotation"]
    corrections = ["--corrections", *a["corrections"]] if a["corrections"] else []
    if "ids" in a:
        return ["--ids", *a["ids"], *corrections]
    if "indices" in a:
        return ["--indices", *map(str, a["indices"]), *corrections]
    return ["--k", str(a["k"]), "--seed", str(a["seed"]), *corrections]


def correction_files():
    """The COCO files of annotation.corrections (an export's folder: its tool's file): the index's inputs,
    so that an export corrected again reruns the index and what depends on the labels."""
    return [str(export_file(path)) for path in config["annotation"]["corrections"]]


def labeller_inputs(wildcards=None):
    """The files the labeller (config labelgen) labels from, by the names its entry's inputs give them:
    the trained heads (<kind>_head; the semantic one self-trained where self-training is on), or
    the PriMaPs prototypes."""
    made = {
        "heads": {
            f"{kind}_head": LABELLING_SEMANTIC_HEAD if kind == "semantic" else f"{HEADS}/{kind}.pt"
            for kind in HEADS_TRAINED
        },
        "primaps": {"primaps": PRIMAPS},
    }
    return {name: path for artifact in LABELLER.inputs for name, path in made[artifact].items()}


def labeller_args():
    """The `spino pseudo-label` options that name the labeller, its inputs and the settings."""
    inputs = [arg for name, path in labeller_inputs().items() for arg in ("--input", f"{name}={path}")]
    return ["--labeller", config["labelgen"], *inputs, "--settings", PSEUDO_LABEL_SETTINGS]
