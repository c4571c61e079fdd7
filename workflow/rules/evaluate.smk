# Stage 5: scores of a label store against the ground truth (PQ/SQ/RQ, mIoU; JSON and CSV).


rule evaluate:
    input:
        complete=f"{RESULTS}/{{store}}.complete.json",
        gt_complete=f"{RESULTS}/ground_truth.complete.json",
        manifest=f"{RESULTS}/manifest.csv",
    output:
        json=f"{RESULTS}/scores/{{store}}.json",
        csv=report(f"{RESULTS}/scores/{{store}}.csv", caption="../report/scores.rst", category="Scores"),
    log:
        f"{LOGS}/evaluate_{{store}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{store}}.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        prediction=lambda w: f"{RESULTS}/{w.store}.zarr",
        gt=f"{RESULTS}/ground_truth.zarr",
        exclude=["--exclude-annotated"] if config["evaluation"]["exclude_annotated"] else [],
        splits=["--splits", *config["evaluation"]["splits"]] if config["evaluation"].get("splits") else [],
        matching=lambda w: "hungarian" if LABEL_FREE and w.store == "pseudo_labels" else "none",
        # with few labels every labelled image may be annotated: the pseudo-labels are then not scored (a note)
        none_ok=lambda w: ["--none-ok"] if w.store == "pseudo_labels" else [],
        code=code("evaluate"),
    shell:
        "spino evaluate {params.prediction:q} --gt {params.gt:q} --manifest {input.manifest:q} {params.exclude:q} {params.splits:q}"
        " --matching {params.matching} {params.none_ok:q}"
        " --json {output.json:q} --csv {output.csv:q} > {log:q} 2>&1"
