# Stages 2-4: train the semantic and boundary heads on the k annotated images, then pseudo-label
# every image of the configured splits, one job per store shard, and gather the store.

import json

HEADS = f"{RESULTS}/heads"
PSEUDO_LABEL_SETTINGS = json.dumps(config["pseudo_labels"], sort_keys=True)


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


rule create_pseudo_label_store:
    localrule: True
    input:
        manifest=f"{RESULTS}/manifest.csv",
        semantic_head=f"{HEADS}/semantic.pt",
        boundary_head=f"{HEADS}/boundary.pt",
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
        store=f"{RESULTS}/pseudo_labels.zarr",
        manifest=f"{RESULTS}/manifest.csv",
        semantic_head=f"{HEADS}/semantic.pt",
        boundary_head=f"{HEADS}/boundary.pt",
    output:
        done=f"{RESULTS}/pseudo_labels.shards/{{shard}}.json",
    params:
        settings=PSEUDO_LABEL_SETTINGS,
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
        " --semantic-head {input.semantic_head:q} --boundary-head {input.boundary_head:q}"
        " --settings {params.settings:q} --device {resources.device} --done {output.done:q} > {log:q} 2>&1"
