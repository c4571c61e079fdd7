# Stage 1: the dataset, its manifest (with the k annotated images) and the ground-truth store.

if config["dataset"]["kind"] == "demo":

    rule make_demo:
        output:
            directory(config["dataset"]["root"]),
        log:
            f"{LOGS}/make_demo.log",
        benchmark:
            f"{RESULTS}/benchmarks/make_demo.tsv"
        localrule: True
        conda:
            SPINO_ENV
        threads: os.cpu_count() or 1  # the first job, alone: every core renders (Snakemake lowers it to --cores)
        params:
            n_train=config["demo"]["n_train"],
            n_val=config["demo"]["n_val"],
            height=config["demo"]["height"],
            width=config["demo"]["width"],
            seed=config["demo"]["seed"],
            code=code("make-demo"),
        shell:
            "spino --threads {threads} make-demo --out {output:q} --n-train {params.n_train} --n-val {params.n_val}"
            " --height {params.height} --width {params.width} --seed {params.seed} > {log:q} 2>&1"


checkpoint index:
    input:
        data=generated_dataset(),
        corrections=correction_files(),
    output:
        manifest=f"{RESULTS}/manifest.csv",
    log:
        f"{LOGS}/index.log",
    benchmark:
        f"{RESULTS}/benchmarks/index.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        dataset=dataset_args(),
        listing=DATASET_LISTING,
        split=config["annotation"]["split"],
        unlabelled=unlabelled_args(),
        annotation=annotation_args(),
        # splits the later stages use: an empty one fails here, not after hours of training
        need_images=splits_needing_images(),
        need_labels=splits_needing_labels(),
        image_size=image_size_args(),
        code=code("index"),
    shell:
        "spino index {params.dataset:q} --annotate-split {params.split:q} {params.unlabelled:q} {params.annotation:q}"
        " --need-images {params.need_images:q} --need-labels {params.need_labels:q} {params.image_size}"
        " --out {output.manifest:q} > {log:q} 2>&1"


rule create_ground_truth_store:
    input:
        manifest=f"{RESULTS}/manifest.csv",
    output:
        store=directory(f"{RESULTS}/ground_truth.zarr"),
    log:
        f"{LOGS}/create_ground_truth_store.log",
    benchmark:
        f"{RESULTS}/benchmarks/create_ground_truth_store.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        dataset=dataset_args(),
        per_shard=shard_size("ground_truth"),
        image_size=image_size_args(),
        code=code("create-store"),
    shell:
        "spino create-store {params.dataset:q} --manifest {input.manifest:q} {params.image_size} --kind ground_truth"
        " --images-per-shard {params.per_shard} --out {output.store:q} > {log:q} 2>&1"


rule write_ground_truth_shard:
    input:
        store=f"{RESULTS}/ground_truth.zarr",
        manifest=f"{RESULTS}/manifest.csv",
    output:
        done=f"{RESULTS}/ground_truth.shards/{{shard}}.json",
    log:
        f"{LOGS}/write_ground_truth_shard/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/write_ground_truth_shard/{{shard}}.tsv"
    conda:
        SPINO_ENV
    params:
        dataset=dataset_args(),
        code=code("write-gt"),
    shell:
        "spino write-gt {params.dataset:q} --manifest {input.manifest:q} --store {input.store:q}"
        " --shard {wildcards.shard} --done {output.done:q} > {log:q} 2>&1"


rule gather:
    input:
        store=f"{RESULTS}/{{store}}.zarr",
        shards=lambda wildcards: shard_markers(wildcards.store),
    output:
        f"{RESULTS}/{{store}}.complete.json",
    log:
        f"{LOGS}/gather_{{store}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather/{{store}}.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        code=code("gather"),
    shell:
        "spino gather {input.store:q} --out {output:q} > {log:q} 2>&1"
