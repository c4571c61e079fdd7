"""The report's training curves: one panel per loss CSV the run wrote, every head kind included."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from spino.data.io import write_csv
from spino.labelgen.head_kinds import HEAD_KINDS
from spino.report import plot_curves


def _losses(path: Path, scale: float) -> None:
    write_csv(path, ["step", "epoch", "loss", "lr"], [(s, 0, scale / (s + 1), 1e-3) for s in range(30)])


def test_curves_draw_every_head_the_run_trained(tmp_path: Path) -> None:
    widths = {}
    for trained in (["semantic", "boundary"], list(HEAD_KINDS)):
        results = tmp_path / "-".join(trained)
        for kind in trained:
            _losses(results / "heads" / f"{kind}_losses.csv", 1.0)
        _losses(results / "panoptic" / "losses.csv", 2.0)
        assert plot_curves(results, results / "curves.png")
        widths[len(trained)] = Image.open(results / "curves.png").width
    # one panel per curve, each 4.2 inches at 90 dpi: the embedding head's curve is a panel of its own
    assert widths[3] - widths[2] == round(4.2 * 90)
    assert widths[2] == round(3 * 4.2 * 90)
