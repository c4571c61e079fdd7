# Stages 6-7: train the panoptic model on the pseudo-labels (mixed with the annotated ground
# truth), then predict the evaluation splits, one job per store shard.


rule train_panoptic:
    input:
        manifest=f"{RESULTS}/manifest.csv",
        pseudo_labels=f"{RESULTS}/pseudo_labels.complete.json",
        ground_truth=f"{RESULTS}/ground_truth.complete.json",
    output:
        model=f"{PANOPTIC}/model.pt",
        losses=f"{PANOPTIC}/losses.csv",
        validation=f"{PANOPTIC}/validation.csv",
    log:
        f"{LOGS}/train_panoptic.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_panoptic.tsv"
    conda:
        SPINO_ENV
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("panoptic"),
        device=device("panoptic"),
        loader_workers=config["panoptic"]["loader_workers"],  # how, not what: changes no batch, reruns nothing
    params:
        pseudo_labels=f"{RESULTS}/pseudo_labels.zarr",
        ground_truth=f"{RESULTS}/ground_truth.zarr",
        workdir=f"{PANOPTIC}/checkpoints",  # not an output: it survives a killed job, which resumes from it
        train_splits=config["panoptic"]["train_splits"],
        val_splits=config["panoptic"]["eval_splits"],
        model=settings("panoptic.model", config["panoptic"]["model"]),
        train=settings("panoptic.train", config["panoptic"]["train"]),
        backbone=settings("backbone", config["backbone"]),
        code=code("train-panoptic"),
    shell:
        "spino --threads {threads} train-panoptic --manifest {input.manifest:q} --pseudo-labels {params.pseudo_labels:q}"
        " --ground-truth {params.ground_truth:q} --train-splits {params.train_splits:q}"
        " --val-splits {params.val_splits:q} --model {params.model:q} --train {params.train:q}"
        " --backbone {params.backbone:q} --gpus {resources.gpu} --device {resources.device}"
        " --workers {resources.loader_workers} --workdir {params.workdir:q}"
        " --out {output.model:q} > {log:q} 2>&1"


rule create_prediction_store:
    input:
        manifest=f"{RESULTS}/manifest.csv",
        model=f"{PANOPTIC}/model.pt",
    output:
        store=directory(f"{RESULTS}/predictions.zarr"),
    log:
        f"{LOGS}/create_prediction_store.log",
    benchmark:
        f"{RESULTS}/benchmarks/create_prediction_store.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        dataset=dataset_args(),
        splits=config["panoptic"]["eval_splits"],
        per_shard=shard_size("predictions"),
        image_size=image_size_args(),
        code=code("create-store"),
    shell:
        "spino create-store {params.dataset:q} --manifest {input.manifest:q} {params.image_size} --kind predictions"
        " --store-splits {params.splits:q} --images-per-shard {params.per_shard}"
        " --out {output.store:q} > {log:q} 2>&1"


rule predict:
    input:
        store=f"{RESULTS}/predictions.zarr",
        model=f"{PANOPTIC}/model.pt",
    output:
        done=f"{RESULTS}/predictions.shards/{{shard}}.json",
    log:
        f"{LOGS}/predict/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{shard}}.tsv"
    conda:
        SPINO_ENV
    threads: 1
    resources:
        gpu=gpus("predict"),
        device=device("predict"),
    params:
        code=code("predict"),
    shell:
        "spino --threads {threads} predict --checkpoint {input.model:q} --store {input.store:q} --shard {wildcards.shard}"
        " --device {resources.device} --done {output.done:q} > {log:q} 2>&1"
