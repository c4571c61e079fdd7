# After a run: a review round (`snakemake review`; not part of `all`): the unlabelled images a
# correction would help most, with their pseudo-labels pre-drawn for CVAT and Label Studio.


rule review:
    input:
        manifest=f"{RESULTS}/manifest.csv",
        pseudo_labels=f"{RESULTS}/pseudo_labels.complete.json",
        predictions=[f"{RESULTS}/predictions.complete.json"] if SCORES_MODEL else [],
        features=[f"{RESULTS}/features.h5"] if config["review"]["diversity"] else [],
    output:
        round=directory(f"{RESULTS}/review/round-{config['review']['round']}"),
    log:
        f"{LOGS}/review-{config['review']['round']}.log",
    benchmark:
        f"{RESULTS}/benchmarks/review.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        pseudo_labels=f"{RESULTS}/pseudo_labels.zarr",
        predictions=["--predictions", f"{RESULTS}/predictions.zarr"] if SCORES_MODEL else [],
        features=["--features", f"{RESULTS}/features.h5"] if config["review"]["diversity"] else [],
        scored=[*config["panoptic"]["eval_splits"], *(config["evaluation"]["splits"] or [])],
        k=config["review"]["k"],
        round=config["review"]["round"],
        code=code("review"),
    shell:
        "spino review --manifest {input.manifest:q} --pseudo-labels {params.pseudo_labels:q} {params.predictions:q}"
        " {params.features:q} --scored-splits {params.scored:q} --k {params.k} --round {params.round} --out {output.round:q} > {log:q} 2>&1"
