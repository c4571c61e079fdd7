# After training: `snakemake segment` (like `suggest`, not part of `all`) runs the run's panoptic
# model on new images and videos (config `segment.inputs`), as `spino segment` does for a user.


rule segment:
    input:
        model=f"{PANOPTIC}/model.pt",
        media=segment_media,
    output:
        out=directory(f"{RESULTS}/segment"),
    log:
        f"{LOGS}/segment.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment.tsv"
    conda:
        SPINO_ENV
    threads: 2
    resources:
        gpu=gpus("predict"),
        device=device("predict"),
    params:
        inputs=config["segment"]["inputs"],
        format=config["segment"]["format"],
        overlay="--overlay" if config["segment"]["overlay"] else [],
        batch_size=config["segment"]["batch_size"],
        track=segment_track_args(),
        code=code("segment"),
    shell:
        "spino --threads {threads} segment {input.model:q} {params.inputs:q} --out {output.out:q}"
        " --format {params.format} {params.overlay} --batch-size {params.batch_size} {params.track}"
        " --device {resources.device} > {log:q} 2>&1"
