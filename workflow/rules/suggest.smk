# Before annotating: which k images to label (`snakemake suggest`; not part of a normal run, which
# takes its annotated images from the config's `annotation` section).


rule image_features:
    input:
        data=generated_dataset(),
    output:
        features=f"{RESULTS}/features.h5",
    log:
        f"{LOGS}/image_features.log",
    benchmark:
        f"{RESULTS}/benchmarks/image_features.tsv"
    conda:
        SPINO_ENV
    threads: 4
    resources:
        gpu=gpus("heads"),
        device=device("heads"),
    params:
        dataset=dataset_args(),
        unlabelled=unlabelled_args(),
        listing=DATASET_LISTING,
        backbone=settings("backbone", config["backbone"]),
        input_size=config["suggest"]["input_size"],
        code=code("features"),
    shell:
        "spino --threads {threads} features {params.dataset:q} {params.unlabelled:q} --backbone {params.backbone:q}"
        " --input-size {params.input_size} --device {resources.device} --out {output.features:q} > {log:q} 2>&1"


rule suggest:
    input:
        features=f"{RESULTS}/features.h5",
        data=generated_dataset(),
    output:
        annotation=f"{RESULTS}/suggest/annotation.yaml",
        figure=f"{RESULTS}/suggest/suggestion.png",
    log:
        f"{LOGS}/suggest.log",
    benchmark:
        f"{RESULTS}/benchmarks/suggest.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        dataset=dataset_args(),
        unlabelled=unlabelled_args(),
        split=config["annotation"]["split"],
        k=config["suggest"]["k"],
        method=config["suggest"]["method"],
        seed=config["suggest"]["seed"],
        code=code("suggest"),
    shell:
        "spino suggest {params.dataset:q} {params.unlabelled:q} --features {input.features:q} --split {params.split:q} --k {params.k}"
        " --method {params.method} --seed {params.seed} --out {output.annotation:q} --figure {output.figure:q} > {log:q} 2>&1"
