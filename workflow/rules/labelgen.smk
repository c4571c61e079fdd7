# Stage 4: pseudo-label every image of the configured splits with the trained heads (or the PriMaPs
# prototypes), one job per store shard, and gather the store.


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
