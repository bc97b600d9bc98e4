"""The report's figures, rendered: the roofline of every shipped scenario (at a small batch and
length, on 16 cores, to stay cheap: the same op set) has a label for every op, no two labels
overlapping (matplotlib's text extents), dense and sparse ceilings, ridge points and axes that
hold the data."""

from __future__ import annotations

import itertools

import pytest
from matplotlib.text import Text

from prodigy_sim.models import load_scenario, scenario_names
from prodigy_sim.reports import (
    place_labels,
    plot_breakdown,
    plot_compare,
    plot_roofline,
    roofline_points,
    simulate_scenario,
)


def _small(name: str):
    sc = load_scenario(name)
    field = "context_length" if sc.phase == "decode" else "sequence_length"
    return sc.model_copy(update={"batch": 1, field: 128})


@pytest.fixture(scope="module")
def reports():
    return {name: simulate_scenario(_small(name), cores=16) for name in scenario_names()}


def _text_boxes(fig):
    renderer = fig.canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        for t in ax.texts:
            if t.get_text() and t.get_visible():
                # the text alone (an Annotation's own extent includes its leader line)
                boxes.append((ax, t.get_text(), Text.get_window_extent(t, renderer)))
    return boxes


def _assert_no_overlap(fig):
    boxes = _text_boxes(fig)
    for (_, ta, a), (_, tb, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"labels {ta!r} and {tb!r} overlap"
    return boxes


def test_every_scenario_roofline_has_all_labels_and_none_overlap(reports):
    for name, rep in reports.items():
        fig = plot_roofline(rep)
        fig.canvas.draw()
        boxes = _assert_no_overlap(fig)
        full, zoom = fig.axes[:2]
        pts = roofline_points(rep)
        labels = [t for ax, t, _ in boxes if ax is zoom]
        # one label per op with work, none left out for lack of room
        assert sorted(labels) == sorted(p["label"] for p in pts), name
        assert not any(t.startswith("not labelled") for _, t, _ in boxes)
        # vector ops are on the plot
        assert any(p["vector"] for p in pts) and any("norm" in t for t in labels), name
        # tick labels of each axis do not collide either
        renderer = fig.canvas.get_renderer()
        for ax in (full, zoom):
            for axis in (ax.xaxis, ax.yaxis):
                labels = axis.get_ticklabels(which="both")       # minor ones too
                ticks = [Text.get_window_extent(t, renderer) for t in labels
                         if t.get_visible() and t.get_text()]
                assert len(ticks) >= 2, name
                for a, b in itertools.combinations(ticks, 2):
                    assert not a.overlaps(b), (name, [t.get_text() for t in labels])
        # every label lies inside its axes
        for ax, t, bb in boxes:
            frame = ax.get_window_extent()
            assert frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0 \
                and bb.y1 <= frame.y1, (name, t)
        # the zoom axes hold the data and are scaled to it (within a factor 3 of its range)
        xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
        (x0, x1), (y0, y1) = zoom.get_xlim(), zoom.get_ylim()
        assert x0 < min(xs) and max(xs) < x1 and x1 / x0 <= 9 * max(xs) / min(xs)
        assert y0 < min(ys) and max(ys) < y1 and y1 / y0 <= 25 * max(ys) / min(ys)
        # dense and 8:4-sparse ceilings of every matrix format, and the ridge points
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        for fmt, (dense, sparse) in rep.matrix_peaks.items():
            assert any(fmt in t and "dense" in t for t in legend), (name, fmt)
            # an 8:4 ceiling for every format the matrix unit runs sparse
            assert (sparse > dense) == any(fmt in t and "8:4 sparse" in t for t in legend), \
                (name, fmt)
        assert any("8:4 sparse" in t for t in legend), name
        ridges = [t for ax, t, _ in boxes if ax is full and t.startswith("ridge")]
        assert len(ridges) == len(legend) - 1 - len({p["format"] for p in pts}), name


def test_crowded_labels_never_overlap():
    """Twenty labels on almost the same point: placed apart, or listed as not placed."""
    from prodigy_sim.reports._plots import _figure

    fig = _figure(5, 4)
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1, 100)
    ax.set_ylim(1, 100)
    pts = [(10 * (1 + 0.001 * i), 10.0) for i in range(20)]
    names = [f"operation_{i}" for i in range(20)]
    ax.scatter(*zip(*pts, strict=True))
    fig.tight_layout()
    anns = place_labels(ax, pts, names)
    fig.canvas.draw()
    boxes = _assert_no_overlap(fig)
    shown = {t for _, t, _ in boxes}
    lost = [t for t in shown if t.startswith("not labelled")]
    placed = shown - set(lost)
    assert placed and len(placed) + (len(lost[0].split(", ")) if lost else 0) == 20
    assert len(anns) == len(placed) + len(lost)


def test_breakdown_and_compare(reports):
    rep = reports["llama-2-7b-decode-tai4"]
    fig = plot_breakdown(rep)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][0].endswith(f"x{rep.ops[0]['repeat']}")
    assert sum(1 for t in ax.texts if "x roof" in t.get_text()) == len(rep.ops)
    other = reports["llama-2-70b-decode-tai2-sparse"]
    fig = plot_compare([rep, other], ["7B tai4", "70B tai2 8:4"])
    fig.canvas.draw()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"{rep.tokens_per_s:.1f} tok/s" in texts
    _assert_no_overlap(fig)
