"""The figures' style core: the paper and slides styles, what a figure's text says
(:class:`Labels`), where colour bars and legends go, and saving figures and animations.

Every figure function takes plain numpy arrays and metadata and returns a
:class:`matplotlib.figure.Figure` built without pyplot (so no global figure state and no
display is needed); :func:`save_figure` writes it atomically as PNG, PDF or SVG, and
:func:`save_animation` an animation as MP4 or GIF.  A function that takes ``ax`` draws into a
user's axes, keeping its colour bar, labels and legend inside that axes' own box.
"""

from __future__ import annotations

import contextlib as _contextlib
import contextvars as _contextvars
import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["style", "using", "scale", "STYLES", "save_figure", "save_animation", "FIGURE_FORMATS", "Labels"]

#: Single-column figure width in inches (most journals: 3.25–3.5 in).
COLUMN_WIDTH = 3.4
#: Two-column (full page) width in inches.
PAGE_WIDTH = 7.0

_RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "figure.constrained_layout.use": True,
    # fonts a journal accepts: TrueType (Type 42) in PDF and PostScript, never Type 3 (IEEE and
    # ACM reject Type 3); SVG text kept as text, editable in Inkscape or Illustrator
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}

#: The figure styles: ``paper`` (a 3.4-inch journal column, 7-8 pt type) and ``slides`` (a
#: 16:9 frame, about twice as large, with type that reads from the back of a lecture hall:
#: 15-19 pt, thicker lines).  ``scale`` multiplies every figure size; ``aspect`` is the least
#: width / height (a slide figure is widened to 16:9, its panels keep their shape).
STYLES = {
    "paper": {"scale": 1.0, "aspect": 0.0, "rc": _RC},
    "slides": {"scale": 1.9, "aspect": 16 / 9, "rc": {
        **_RC,
        "font.size": 17, "axes.titlesize": 18, "axes.labelsize": 17, "xtick.labelsize": 15, "ytick.labelsize": 15,
        "legend.fontsize": 14, "legend.title_fontsize": 14, "figure.titlesize": 19,
        "lines.linewidth": 2.2, "lines.markersize": 9, "axes.linewidth": 1.3,
        "xtick.major.width": 1.2, "ytick.major.width": 1.2, "xtick.major.size": 6, "ytick.major.size": 6,
        "savefig.dpi": 150,
        "savefig.bbox": None,  # keep the 16:9 frame (constrained layout already fits the content)
    }},
}

_STYLE = _contextvars.ContextVar("landscape_figure_style", default="paper")


@dataclasses.dataclass(frozen=True)
class Labels:
    """What a slice figure's text says; a field left ``None`` takes the figure's own default
    (``""`` leaves it out).

    Attributes:
      x: the horizontal axis's label.
      y: the vertical axis's label.
      z: the colour bar's label (the loss the colours show).
      title: the title.

    Examples:
      >>> a = b = np.linspace(-1, 1, 11)
      >>> fig = ls.figures.landscape_2d(a, b, np.add.outer(a**2, b**2), labels=ls.figures.Labels(x="u", title="a bowl"))
      >>> fig.axes[0].get_xlabel(), fig.axes[0].get_title()
      ('u', 'a bowl')
    """

    x: str | None = None
    y: str | None = None
    z: str | None = None
    title: str | None = None

    def over(self, x: str | None = None, y: str | None = None, z: str | None = None,
             title: str | None = None) -> Labels:
        """These labels, each field left ``None`` taken from the defaults given.

        Args:
          x: the default horizontal label.
          y: the default vertical label.
          z: the default colour-bar label.
          title: the default title.

        Returns:
          a :class:`Labels`.
        """
        mine = dataclasses.asdict(self)
        return Labels(**{k: (mine[k] if mine[k] is not None else v)
                         for k, v in (("x", x), ("y", y), ("z", z), ("title", title))})


def marked(points) -> tuple[np.ndarray | None, list[str] | None]:
    """``(points (m, 2), names)`` of marked points given as ``{name: (x, y)}`` or an ``(m, 2)``
    array (named ``"0"``, ``"1"`` …), or ``(None, None)``.

    Args:
      points: the points.

    Returns:
      the coordinates and their names.
    """
    if points is None:
        return None, None
    if isinstance(points, Mapping):
        if not points:
            return None, None
        return np.asarray(list(points.values()), float).reshape(-1, 2), [str(k) for k in points]
    pts = np.asarray(points, float).reshape(-1, 2)
    return pts, [str(i) for i in range(len(pts))]


def named_points(points, names) -> dict | np.ndarray | None:
    """Saved points ``(m, 2)`` and their saved names as ``{name: (x, y)}`` (the array itself
    when no names were saved).

    Args:
      points: ``(m, 2)`` or ``None``.
      names: their names, or ``None``.

    Returns:
      what figure functions take as ``points``.
    """
    if points is None or not names:
        return points
    return {str(k): v for k, v in zip(names, np.asarray(points, float).reshape(-1, 2))}


def add_colorbar(mappable, ax, own: bool):
    """A colour bar for ``mappable``: beside the axes, exactly as tall, on a figure of the
    library's own; taken from the axes' own box when drawing into a user's axes — the axes give
    up a strip on their right, the bar stands at its right edge with its ticks and label on its
    inner side — so that nothing of it reaches a neighbouring panel.

    Args:
      mappable: what the colours show.
      ax: the axes the colour bar belongs to.
      own: the figure is the library's own.

    Returns:
      the :class:`matplotlib.colorbar.Colorbar`.
    """
    if own:
        return ax.figure.colorbar(mappable, cax=ax.inset_axes([1.04, 0.0, 0.045, 1.0]))
    cb = ax.figure.colorbar(mappable, ax=ax, fraction=0.05, pad=0.2)
    cb.ax.yaxis.set_ticks_position("left")
    cb.ax.yaxis.set_label_position("left")
    return cb


def add_legend(ax, handles: list, own: bool, ncol: int = 2):
    """A legend explaining ``handles``: under the axes on a figure of the library's own, inside
    the axes when drawing into a user's (it never leaves their box).

    Args:
      ax: the axes.
      handles: the legend's handles.
      own: the figure is the library's own.
      ncol: columns of an own figure's legend.

    Returns:
      the legend.
    """
    if own:
        return ax.figure.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(handles)),
                                frameon=False, fontsize=font_size(6))
    return ax.legend(handles=handles, loc="best", fontsize=font_size(5), framealpha=0.8)


@_contextlib.contextmanager
def using(name: str):
    """Draw the figures made inside the ``with`` block in style ``name`` (``paper`` or ``slides``).

    The choice is scoped like :func:`matplotlib.rc_context` (a context variable, restored on
    exit); figures keep the style they were made with when saved later.

    Args:
      name: ``"paper"`` or ``"slides"`` (:data:`STYLES`).

    Raises:
      ConfigError: an unknown style.

    Examples:
      >>> with ls.figures.using("slides"):
      ...     big = ls.figures.scale()
      >>> big > 1.5, ls.figures.scale()                              # back to the paper style outside the block
      (True, 1.0)
    """
    from ..core.errors import ConfigError

    if name not in STYLES:
        raise ConfigError(f"unknown figure style {name!r}; choose {', '.join(STYLES)}")
    token = _STYLE.set(name)
    try:
        yield
    finally:
        _STYLE.reset(token)


def styled(fn):
    """Draw the figure function ``fn`` under the current style's rc settings (axes, ticks and
    labels take their sizes when they are created)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(style_rc()):
            return fn(*args, **kwargs)

    return wrapper


def font_size(points: float) -> float:
    """A font size written for the paper style (8 pt body), in the current style."""
    return points * float(style_rc()["font.size"]) / 8.0


def scale() -> float:
    """How much the current style (:func:`using`) enlarges every figure (``paper``: 1).

    Examples:
      >>> ls.figures.scale()
      1.0
    """
    return float(STYLES[_STYLE.get()]["scale"])


def style_rc() -> dict:
    return STYLES[_STYLE.get()]["rc"]


def style() -> dict:
    """The rc settings figures are drawn with in the current style (:func:`using`; ``paper`` by
    default: small, readable at column width, TrueType fonts in PDF, editable SVG text).

    Examples:
      >>> ls.figures.style()["pdf.fonttype"]                      # TrueType in PDFs (journals reject Type 3)
      42
    """
    return dict(style_rc())


FIGURE_FORMATS = ("png", "pdf", "svg")


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` atomically (:mod:`landscape.files`); the format comes from the
    suffix (``.png``, ``.pdf``, ``.svg``).  Returns the path.

    Args:
      fig: the figure.
      path: the file (``.png``, ``.pdf``, ``.svg``); its directory is created.

    Returns:
      the path.

    Raises:
      ConfigError: another suffix.
      StorageError: the directory cannot be written.

    Examples:
      >>> import tempfile, os
      >>> fig = ls.figures.curve(np.linspace(0, 1, 5), {"loss": np.array([1.0, 1.5, 2.0, 1.5, 1.0])})
      >>> path = ls.figures.save_figure(fig, os.path.join(tempfile.mkdtemp(), "figures", "line.pdf"))
      >>> path.suffix, path.stat().st_size > 1000
      ('.pdf', True)
    """
    import io as _io

    import matplotlib

    from ..core import files
    from ..core.errors import ConfigError

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"figure format must be one of {', '.join(FIGURE_FORMATS)}, got {path.suffix!r}")
    buf = _io.BytesIO()
    with matplotlib.rc_context(STYLES[getattr(fig, "_landscape_style", _STYLE.get())]["rc"]):
        fig.savefig(buf, format=fmt)
    with files.storage_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write_bytes(path, buf.getvalue())
    return path


def save_animation(anim, path, *, fps: int = 12, dpi: int = 110) -> Path:
    """Write a matplotlib animation atomically: MP4 through ffmpeg when ``path`` ends in
    ``.mp4`` and ffmpeg is installed, otherwise a GIF through Pillow (``.mp4`` then becomes
    ``.gif``); ``dpi`` sets the resolution (pixels = figure inches × dpi).  Returns the path written.

    Args:
      anim: a ``matplotlib.animation.Animation``.
      path: ``.gif`` or ``.mp4``.
      fps: frames per second.
      dpi: dots per inch.

    Returns:
      the path written.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> import tempfile, os
      >>> paths = np.stack([np.linspace([0.9, 0.9], [0.0, 0.0], 6)])      # one start, 6 frames
      >>> anim = ls.figures.descent_animation(a, b, z, paths)
      >>> ls.figures.save_animation(anim, os.path.join(tempfile.mkdtemp(), "descent.gif")).suffix
      '.gif'
    """
    import tempfile

    import matplotlib
    from matplotlib import animation

    from ..core import files
    from ..core.errors import ConfigError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ConfigError(f"animation format must be .mp4 or .gif, got {path.suffix!r}")
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        path, suffix = path.with_suffix(".gif"), ".gif"
    writer = animation.FFMpegWriter(fps=fps) if suffix == ".mp4" else animation.PillowWriter(fps=fps)
    with files.storage_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    # the writers choose the format from the file name: render into a private directory, then
    # copy the bytes into place atomically
    with tempfile.TemporaryDirectory(prefix="landscape-animation-") as staging:
        tmp = Path(staging) / f"animation{suffix}"
        with matplotlib.rc_context({**style(), "savefig.bbox": None}):
            anim.save(tmp, writer=writer, dpi=dpi)
        files.atomic_write_bytes(path, tmp.read_bytes())
    return path


def log_axis(ax, axis: str, values) -> None:
    """A log scale on ``axis`` (``"x"`` or ``"y"``) with labelled ticks even when the positive
    ``values`` span less than a decade (where matplotlib's log locator labels no tick at all)."""
    from matplotlib import ticker

    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    getattr(ax, f"set_{axis}scale")("log")
    if v.size and v.max() / v.min() < 10:
        a = getattr(ax, f"{axis}axis")
        a.set_major_locator(ticker.MaxNLocator(nbins=4))
        a.set_major_formatter(ticker.FuncFormatter(lambda t, _: f"{t:.3g}"))
        a.set_minor_locator(ticker.NullLocator())


def new_figure(width: float, height: float) -> Figure:
    """A new figure of the current style: ``width`` × ``height`` inches at the paper style,
    scaled by the style's ``scale`` and widened to its ``aspect``; it remembers its style for
    :func:`save_figure`."""
    import matplotlib

    st = STYLES[_STYLE.get()]
    w, h = width * st["scale"], height * st["scale"]
    with matplotlib.rc_context(style_rc()):
        fig = Figure(figsize=(max(w, h * st["aspect"]), h), layout="constrained")
    fig._landscape_style = _STYLE.get()
    return fig


# ---------------------------------------------------------------------- landscapes


# ---------------------------------------------------------------------- comparing minima


# ---------------------------------------------------------------------- where starts go
def with_warnings(fig: Figure, meta: dict) -> Figure:
    """Print a result's warnings (members that diverged or did not learn) on its figure."""
    notes = [str(w) for w in meta.get("warnings") or []]
    if notes:
        # hung below the axes: the tight bounding box of every saved figure takes it in
        fig.text(0.01, 0.0, "\n".join(notes), color="tab:red", fontsize=font_size(6), ha="left", va="top")
    return fig
