# Stages 2-4: train the semantic and boundary heads on the k annotated images, optionally self-train
# the semantic head on similar unlabelled images, then pseudo-label every image of the configured
# splits, one job per store shard, and gather the store.

import json

HEADS = f"{RESULTS}/heads"
SELF_TRAINING = f"{RESULTS}/self_training"
PSEUDO_LABEL_SETTINGS = json.dumps(config["pseudo_labels"], sort_keys=True)
# The semantic head that labels the store: the self-trained one when self-training is on.
LABELLING_SEMANTIC_HEAD = f"{SELF_TRAINING}/semantic.pt" if config["self_training"]["enabled"] else f"{HEADS}/semantic.pt"
PRIMAPS = f"{RESULTS}/primaps/prototypes.pt"
EMBEDDING_FUSION = config["pseudo_labels"]["fusion"] == "embedding"
SPOCO = f"{RESULTS}/spoco"  # SPOCO-style HDF5 per shard (fusion: embedding)


def labeller_inputs(wildcards=None):
    """What labels the store: the trained heads, or the PriMaPs prototypes (labelgen: primaps)."""
    if LABEL_FREE:
        return {"prototypes": PRIMAPS}
    heads = {"semantic_head": LABELLING_SEMANTIC_HEAD, "boundary_head": f"{HEADS}/boundary.pt"}
    return {**heads, "embedding_head": f"{HEADS}/embedding.pt"} if EMBEDDING_FUSION else heads


def labeller_args():
    """The `spino pseudo-label` options that name the labeller and its settings."""
    if LABEL_FREE:
        return ["--primaps", PRIMAPS]
    heads = ["--semantic-head", LABELLING_SEMANTIC_HEAD, "--boundary-head", f"{HEADS}/boundary.pt", "--settings", PSEUDO_LABEL_SETTINGS]
    return [*heads, "--embedding-head", f"{HEADS}/embedding.pt"] if EMBEDDING_FUSION else heads


rule train_semantic_head:
    input:
        manifest=f"{RESULTS}/manifest.csv",
    output:
        checkpoint=f"{HEADS}/semantic.pt",
        losses=f"{HEADS}/semantic_losses.csv",
    params:
        dataset=dataset_args(),
        head=json.dumps(config["semantic_head"], sort_keys=True),
        backbone=json.dumps(config["backbone"], sort_keys=True),
        code=code("train-head"),
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("heads"),
        device=device("heads"),  # how, not what: changing it reruns nothing
    benchmark:
        f"{RESULTS}/benchmarks/train_semantic_head.tsv"
    log:
        f"{LOGS}/train_semantic_head.log",
    shell:
        "spino --threads {threads} train-head semantic {params.dataset:q} --manifest {input.manifest:q} --head {params.head:q}"
        " --backbone {params.backbone:q} --device {resources.device} --checkpoint {output.checkpoint:q}"
        " --losses {output.losses:q} > {log:q} 2>&1"


rule train_boundary_head:
    input:
        manifest=f"{RESULTS}/manifest.csv",
    output:
        checkpoint=f"{HEADS}/boundary.pt",
        losses=f"{HEADS}/boundary_losses.csv",
    params:
        dataset=dataset_args(),
        head=json.dumps(config["boundary_head"], sort_keys=True),
        backbone=json.dumps(config["backbone"], sort_keys=True),
        code=code("train-head"),
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("heads"),
        device=device("heads"),  # how, not what: changing it reruns nothing
    benchmark:
        f"{RESULTS}/benchmarks/train_boundary_head.tsv"
    log:
        f"{LOGS}/train_boundary_head.log",
    shell:
        "spino --threads {threads} train-head boundary {params.dataset:q} --manifest {input.manifest:q} --head {params.head:q}"
        " --backbone {params.backbone:q} --device {resources.device} --checkpoint {output.checkpoint:q}"
        " --losses {output.losses:q} > {log:q} 2>&1"


rule train_embedding_head:
    input:
        manifest=f"{RESULTS}/manifest.csv",
    output:
        checkpoint=f"{HEADS}/embedding.pt",
        losses=f"{HEADS}/embedding_losses.csv",
    params:
        dataset=dataset_args(),
        head=json.dumps(config["embedding_head"], sort_keys=True),
        backbone=json.dumps(config["backbone"], sort_keys=True),
        code=code("train-head"),
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("heads"),
        device=device("heads"),
    benchmark:
        f"{RESULTS}/benchmarks/train_embedding_head.tsv"
    log:
        f"{LOGS}/train_embedding_head.log",
    shell:
        "spino --threads {threads} train-head embedding {params.dataset:q} --manifest {input.manifest:q} --head {params.head:q}"
        " --backbone {params.backbone:q} --device {resources.device} --checkpoint {output.checkpoint:q}"
        " --losses {output.losses:q} > {log:q} 2>&1"


rule self_train:
    input:
        manifest=f"{RESULTS}/manifest.csv",
        features=f"{RESULTS}/features.h5",
        semantic_head=f"{HEADS}/semantic.pt",
        boundary_head=f"{HEADS}/boundary.pt",
    output:
        checkpoint=f"{SELF_TRAINING}/semantic.pt",
        neighbours=f"{SELF_TRAINING}/neighbours.csv",
        losses=f"{SELF_TRAINING}/losses.csv",
    params:
        dataset=dataset_args(),
        settings=json.dumps(config["self_training"], sort_keys=True),
        labels=PSEUDO_LABEL_SETTINGS,  # the neighbours are labelled as the store would label them
        code=code("self-train"),
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("heads"),
        device=device("heads"),
    benchmark:
        f"{RESULTS}/benchmarks/self_train.tsv"
    log:
        f"{LOGS}/self_train.log",
    shell:
        "spino --threads {threads} self-train {params.dataset:q} --manifest {input.manifest:q} --features {input.features:q}"
        " --semantic-head {input.semantic_head:q} --boundary-head {input.boundary_head:q} --settings {params.settings:q}"
        " --labels {params.labels:q} --device {resources.device} --out {output.checkpoint:q}"
        " --neighbours {output.neighbours:q} --losses {output.losses:q} > {log:q} 2>&1"


rule fit_primaps:
    input:
        manifest=f"{RESULTS}/manifest.csv",
    output:
        prototypes=PRIMAPS,
    params:
        dataset=dataset_args(),
        settings=json.dumps(config["primaps"], sort_keys=True),
        backbone=json.dumps(config["backbone"], sort_keys=True),
        code=code("fit-primaps"),
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("heads"),
        device=device("heads"),
    benchmark:
        f"{RESULTS}/benchmarks/fit_primaps.tsv"
    log:
        f"{LOGS}/fit_primaps.log",
    shell:
        "spino --threads {threads} fit-primaps {params.dataset:q} --manifest {input.manifest:q} --settings {params.settings:q}"
        " --backbone {params.backbone:q} --device {resources.device} --out {output.prototypes:q} > {log:q} 2>&1"


rule create_pseudo_label_store:
    localrule: True
    input:
        unpack(labeller_inputs),
        manifest=f"{RESULTS}/manifest.csv",
    output:
        store=directory(f"{RESULTS}/pseudo_labels.zarr"),
    params:
        dataset=dataset_args(),
        splits=config["pseudo_labels"]["splits"],
        per_shard=config["stores"]["images_per_shard"],
        settings=PSEUDO_LABEL_SETTINGS,  # a new setting starts a new store: no shard of old labels survives
        code=code("create-store"),
    log:
        f"{LOGS}/create_pseudo_label_store.log",
    shell:
        "spino create-store {params.dataset:q} --manifest {input.manifest:q} --kind pseudo_labels"
        " --store-splits {params.splits:q} --confidence --images-per-shard {params.per_shard}"
        " --out {output.store:q} > {log:q} 2>&1"


rule pseudo_label:
    input:
        unpack(labeller_inputs),
        store=f"{RESULTS}/pseudo_labels.zarr",
        manifest=f"{RESULTS}/manifest.csv",
    output:
        done=f"{RESULTS}/pseudo_labels.shards/{{shard}}.json",
        **({"spoco": f"{SPOCO}/{{shard}}.h5"} if EMBEDDING_FUSION else {}),
    params:
        labeller=labeller_args(),
        spoco=lambda w: ["--spoco", f"{SPOCO}/{w.shard}.h5"] if EMBEDDING_FUSION else [],
        code=code("pseudo-label"),
    threads: 1
    resources:
        gpu=gpus("pseudo_label"),
        device=device("pseudo_label"),
    benchmark:
        f"{RESULTS}/benchmarks/pseudo_label/{{shard}}.tsv"
    log:
        f"{LOGS}/pseudo_label/{{shard}}.log",
    shell:
        "spino --threads {threads} pseudo-label --manifest {input.manifest:q} --store {input.store:q} --shard {wildcards.shard}"
        " {params.labeller:q} {params.spoco:q} --device {resources.device} --done {output.done:q} > {log:q} 2>&1"
