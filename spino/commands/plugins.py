"""`spino plugins`: every extension point, the entry-point group a plugin registers in, and each
entry with where it comes from (spino itself, or the installed package that declared it)."""

from __future__ import annotations

import argparse

HELP = "the extension points and what is registered in each: spino's own and the installed plugins'"
GROUP = "tool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from spino.data import DATASET_KINDS
    from spino.export import LABEL_FORMATS
    from spino.labelgen.fusion import FUSIONS
    from spino.labelgen.head_kinds import HEAD_KINDS
    from spino.labelgen.labellers import LABELLERS
    from spino.panoptic.instances import INSTANCE_METHODS

    for registry in (DATASET_KINDS, HEAD_KINDS, LABELLERS, FUSIONS, INSTANCE_METHODS, LABEL_FORMATS):
        print(f"{registry.what}s (entry points: {registry.group}):")
        for name in registry:
            print(f"  {name:<16}{registry.origins[name]}")
