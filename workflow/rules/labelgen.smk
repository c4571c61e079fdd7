# Stage 4: pseudo-label every image of the configured splits with the trained heads (or the PriMaPs
# prototypes), one job per store shard, and gather the store.


rule create_pseudo_label_store:
    input:
        unpack(labeller_inputs),
        manifest=f"{RESULTS}/manifest.csv",
    output:
        store=directory(f"{RESULTS}/pseudo_labels.zarr"),
    log:
        f"{LOGS}/create_pseudo_label_store.log",
    benchmark:
        f"{RESULTS}/benchmarks/create_pseudo_label_store.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        dataset=dataset_args(),
        splits=config["pseudo_labels"]["splits"],
        per_shard=shard_size("pseudo_labels"),
        settings=PSEUDO_LABEL_SETTINGS,  # a new setting starts a new store: no shard of old labels survives
        image_size=image_size_args(),
        top2="--top2" if config["pseudo_labels"]["top2"] else "",
        code=code("create-store"),
    shell:
        "spino create-store {params.dataset:q} --manifest {input.manifest:q} {params.image_size} --kind pseudo_labels"
        " --store-splits {params.splits:q} --confidence {params.top2} --images-per-shard {params.per_shard}"
        " --out {output.store:q} > {log:q} 2>&1"


rule pseudo_label:
    input:
        unpack(labeller_inputs),
        store=f"{RESULTS}/pseudo_labels.zarr",
        manifest=f"{RESULTS}/manifest.csv",
    output:
        **({"spoco": f"{SPOCO}/{{shard}}.h5"} if EMBEDDING_FUSION else {}),
        done=f"{RESULTS}/pseudo_labels.shards/{{shard}}.json",
    log:
        f"{LOGS}/pseudo_label/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pseudo_label/{{shard}}.tsv"
    conda:
        SPINO_ENV
    threads: 1
    resources:
        gpu=gpus("pseudo_label"),
        device=device("pseudo_label"),
    params:
        labeller=labeller_args(),
        spoco=lambda w: ["--spoco", f"{SPOCO}/{w.shard}.h5"] if EMBEDDING_FUSION else [],
        code=code("pseudo-label"),
    shell:
        "spino --threads {threads} pseudo-label --manifest {input.manifest:q} --store {input.store:q} --shard {wildcards.shard}"
        " {params.labeller:q} {params.spoco:q} --device {resources.device} --done {output.done:q} > {log:q} 2>&1"
