# Stage 8: the run report (standalone HTML with PNGs; the same figures go into `snakemake --report`).


rule report:
    input:
        scores=expand(f"{RESULTS}/scores/{{store}}.json", store=SCORED_STORES),
        losses=f"{PANOPTIC}/losses.csv",
    output:
        html=report(
            f"{RESULTS}/report/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
        curves=report(f"{RESULTS}/report/curves.png", caption="../report/curves.rst", category="Training"),
        gallery=report(f"{RESULTS}/report/gallery.png", caption="../report/gallery.rst", category="Labels"),
        # this round's scores; earlier rounds' files are no output of this plan, so they stay for its table
        round=f"{RESULTS}/rounds/round-{len(config['annotation']['corrections'])}.json",
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    localrule: True
    conda:
        SPINO_ENV
    params:
        results=lambda wildcards, output: str(Path(output.html).parents[1]),  # results/<run>
        outdir=lambda wildcards, output: str(Path(output.html).parent),
        config=settings("config", config),
        code=code("report"),
    shell:
        "spino report --results {params.results:q} --config {params.config:q} --out {params.outdir:q} > {log:q} 2>&1"
