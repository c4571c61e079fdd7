"""`spino plugins`: every extension point, the entry-point group a plugin registers in, and each
entry with where it comes from (spino itself, or the installed package that declared it); with
``--schema``, the config schema the workflow validates against: the schema file with every installed
extension's choices and settings sections filled in."""

from __future__ import annotations

import argparse

HELP = "the extension points and what is registered in each: spino's own and the installed plugins'"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--schema", action="store_true", help="print the whole config schema (YAML), the extensions' sections in it"
    )


def run(args: argparse.Namespace) -> None:
    from spino.data import DATASET_KINDS
    from spino.export import LABEL_FORMATS
    from spino.labelgen.fusion import FUSIONS
    from spino.labelgen.head_kinds import HEAD_KINDS
    from spino.labelgen.labellers import LABELLERS
    from spino.panoptic.instances import INSTANCE_METHODS

    registries = (DATASET_KINDS, HEAD_KINDS, LABELLERS, FUSIONS, INSTANCE_METHODS, LABEL_FORMATS)
    if args.schema:
        import yaml

        from spino.config import schema

        for registry in registries:
            list(registry)  # its plugins loaded, their sections in the schema
        print(yaml.safe_dump(schema(), sort_keys=False, width=120), end="")
        return
    for registry in registries:
        print(f"{registry.what}s (entry points: {registry.group}):")
        for name in registry:
            print(f"  {name:<16}{registry.origins[name]}")
