# Stage 2 of a label-free run (labelgen: primaps): fit one prototype per class to the principal mask
# proposals of the images' frozen features, instead of training heads on annotated images.


rule fit_primaps:
    input:
        manifest=f"{RESULTS}/manifest.csv",
    output:
        prototypes=PRIMAPS,
    log:
        f"{LOGS}/fit_primaps.log",
    benchmark:
        f"{RESULTS}/benchmarks/fit_primaps.tsv"
    conda:
        SPINO_ENV
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("heads"),
        device=device("heads"),
    params:
        dataset=dataset_args(),
        settings=settings("primaps", config["primaps"]),
        backbone=settings("backbone", config["backbone"]),
        code=code("fit-primaps"),
    shell:
        "spino --threads {threads} fit-primaps {params.dataset:q} --manifest {input.manifest:q} --settings {params.settings:q}"
        " --backbone {params.backbone:q} --device {resources.device} --out {output.prototypes:q} > {log:q} 2>&1"
