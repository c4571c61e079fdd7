# Stages 2-3: train the semantic and boundary heads (and, for fusion: embedding, the SPOCO embedding
# head) on the k annotated images; optionally self-train the semantic head on the pseudo-labels of
# similar unlabelled images (PASTEL). Not part of a label-free run (labelgen: primaps).


# One rule per head kind of spino.labelgen.head_kinds (train_semantic_head, train_boundary_head,
# train_embedding_head), each with its config section; a run plans those it trains (HEADS_TRAINED).
for kind in HEAD_KINDS:

    rule:
        name:
            f"train_{kind}_head"
        input:
            manifest=f"{RESULTS}/manifest.csv",
        output:
            checkpoint=f"{HEADS}/{kind}.pt",
            losses=f"{HEADS}/{kind}_losses.csv",
        log:
            f"{LOGS}/train_{kind}_head.log",
        benchmark:
            f"{RESULTS}/benchmarks/train_{kind}_head.tsv"
        conda:
            SPINO_ENV
        threads: head_threads()
        resources:
            gpu=gpus("heads"),
            device=device("heads"),  # how, not what: changing it reruns nothing
        params:
            kind=kind,  # the shell command is formatted when the job runs, after the loop: it reads the kind here
            dataset=dataset_args(),
            head=lambda wildcards, kind=kind: settings(f"{kind}_head", config[f"{kind}_head"]),
            backbone=settings("backbone", config["backbone"]),
            workdir=f"{HEADS}/checkpoints",  # not an output: it survives a killed job, which resumes from it
            code=code("train-head"),
        shell:
            "spino --threads {threads} train-head {params.kind} {params.dataset:q} --manifest {input.manifest:q}"
            " --head {params.head:q} --backbone {params.backbone:q} --device {resources.device}"
            " --checkpoint {output.checkpoint:q} --losses {output.losses:q} --workdir {params.workdir:q} > {log:q} 2>&1"


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
    log:
        f"{LOGS}/self_train.log",
    benchmark:
        f"{RESULTS}/benchmarks/self_train.tsv"
    conda:
        SPINO_ENV
    threads: 8  # scaled down to --cores on a workstation
    resources:
        gpu=gpus("heads"),
        device=device("heads"),
    params:
        dataset=dataset_args(),
        settings=lambda wildcards: settings("self_training", config["self_training"]),
        labels=PSEUDO_LABEL_SETTINGS,  # the neighbours are labelled as the store would label them
        workdir=f"{SELF_TRAINING}/checkpoints",  # not an output: it survives a killed job, which resumes from it
        code=code("self-train"),
    shell:
        "spino --threads {threads} self-train {params.dataset:q} --manifest {input.manifest:q} --features {input.features:q}"
        " --semantic-head {input.semantic_head:q} --boundary-head {input.boundary_head:q} --settings {params.settings:q}"
        " --labels {params.labels:q} --device {resources.device} --out {output.checkpoint:q}"
        " --neighbours {output.neighbours:q} --losses {output.losses:q} --workdir {params.workdir:q} > {log:q} 2>&1"
