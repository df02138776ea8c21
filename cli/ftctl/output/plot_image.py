"""``metrics ID --plot FILE.png|FILE.svg``: the terminal chart as an image, with the same markers
(a star at the best step, a cross and a dotted line at the halt, hollow warmup points, ``×`` for
the streak that ended the run, marks for non-finite values) and the same legend in words.

matplotlib is an optional extra (``pip install 'ftctl[plot]'``), imported only here and only when
an image is asked for.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ftctl.errors import ApiError, FtctlError, InvalidInput

if TYPE_CHECKING:
    from ftctl.analysis import Analysis

FORMATS = ("png", "svg")


class MissingExtra(FtctlError):
    code = "missing_extra"


def check_path(path: str) -> Path:
    """Refuse an unsupported format or a place that cannot be written, before anything is fetched."""
    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in FORMATS or not target.stem:
        raise InvalidInput(f"--plot writes PNG or SVG: the file name must end in .png or .svg (got {path!r})")
    parent = target.parent
    if not parent.is_dir():
        raise InvalidInput(f"--plot {path}: the directory {str(parent)!r} does not exist")
    if target.is_dir():
        raise InvalidInput(f"--plot {path}: is a directory; give a file name")
    if target.exists() and not os.access(target, os.W_OK):
        raise InvalidInput(f"--plot {path}: the file exists and is not writable")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"--plot {path}: the directory {str(parent)!r} is not writable")
    return target


def _scaled(values: Sequence[float]) -> tuple[float, int]:
    """A power of ten to divide the values by when matplotlib cannot place them itself (beyond
    about 1e150 its limits overflow; below 1e-150 its tick locator divides by zero)."""
    finite = [abs(v) for v in values if math.isfinite(v) and v]
    if not finite:
        return 1.0, 0
    big, small = max(finite), min(finite)
    if big < 1e150 and small > 1e-150:
        return 1.0, 0
    k = math.floor(math.log10(big))
    return 10.0 ** k if -308 <= k <= 308 else 1.0, k


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never a window, works without a display
        matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, small
        matplotlib.rcParams["svg.hashsalt"] = "ftctl"  # stable ids: the same run gives the same file
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtra("--plot needs matplotlib, which is not installed",
                           hint="install the extra: pip install 'ftctl[plot]'") from None
    return plt


MARKERS = ("o", "^", "s", "D", "v", "P", "h", "<")


def write_many(runs: Sequence[tuple[str, Analysis]], path: str, *, title: str | None = None) -> Path:
    """``compare --plot``: every run's eval_loss on one chart, each with its own colour and marker,
    its best as a star and its halt as a cross with a dotted line, all named in the legend."""
    target = check_path(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    try:
        x_max = 0
        for n, (label, analysis) in enumerate(runs):
            color = f"C{n % 10}"
            steps = [e.step for e in analysis.evaluations]
            values = [e.eval_loss if math.isfinite(e.eval_loss) else math.nan for e in analysis.evaluations]
            x_max = max([x_max, analysis.total_steps or 0, *(steps[-1:] or [0])])
            ax.plot(steps, values, color=color, linewidth=1.5, marker=MARKERS[n % len(MARKERS)] if len(steps) <= 200
                    else None, markersize=4, label=label)
            if analysis.best_eval_loss is not None and analysis.best_step is not None \
                    and math.isfinite(analysis.best_eval_loss):
                ax.plot([analysis.best_step], [analysis.best_eval_loss], "*", color=color, markersize=15,
                        markeredgecolor="black", zorder=5, label=f"{label}: best @ step {analysis.best_step}")
            halt = analysis.halt_step
            if halt is not None:
                ax.axvline(halt, color=color, linestyle=":", linewidth=1.2)
                at = analysis.eval_at(halt)
                y = analysis.evaluations[at - 1].eval_loss if at else math.nan
                finite = [v for v in values if math.isfinite(v)] or [0.0]
                ax.plot([halt], [y if math.isfinite(y) else max(finite)], "X", color=color, markersize=10,
                        markeredgecolor="black", zorder=6, label=f"{label}: halted @ step {halt}")
        if x_max:
            ax.set_xlim(0, x_max)
        ax.set_xlabel("step")
        ax.set_ylabel("eval_loss")
        ax.grid(True, color="0.9")
        ax.legend(loc="upper right", fontsize=7)
        if title:
            ax.set_title(title, fontsize=10)
        fig.savefig(target, format=target.suffix.lower().lstrip("."), metadata=_metadata(target))
    finally:
        plt.close(fig)
    return target


def write(analysis: Analysis, path: str, *, train: Sequence[tuple[int, float]] = (),
          title: str | None = None) -> Path:
    target = check_path(path)
    plt = _pyplot()
    from ftctl.output.chart import UNICODE, legend

    from types import SimpleNamespace

    unit, power = _scaled([e.eval_loss for e in analysis.evaluations] + [v for _, v in train])
    # Everything drawn below goes through ``y``: the same picture, in units of 10**power.
    evaluations = [SimpleNamespace(step=e.step, warmup=e.warmup, eval_loss=e.eval_loss / unit)
                   for e in analysis.evaluations]
    train = [(s, v / unit) for s, v in train]
    best_eval_loss = analysis.best_eval_loss / unit if analysis.best_eval_loss is not None else None
    steps = [e.step for e in evaluations]
    values = [e.eval_loss if math.isfinite(e.eval_loss) else math.nan for e in evaluations]
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    try:
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], color="0.7", linewidth=1, label="train loss")
        ax.plot(steps, values, color="tab:blue", linewidth=1.6, marker="o" if len(steps) <= 200 else None,
                markersize=4, label="eval_loss")  # NaN breaks the line: the gap shows
        warmup = [e for e in evaluations if e.warmup]
        if warmup:
            ax.axvspan(0, warmup[-1].step, color="0.92", zorder=0, label="warmup")
            ax.plot([e.step for e in warmup], [e.eval_loss for e in warmup], "o", markerfacecolor="white",
                    markeredgecolor="tab:blue", markersize=6)
        streak = set(analysis.marked_streak)
        marked = [e for e in evaluations if e.step in streak and math.isfinite(e.eval_loss)]
        if marked:
            ax.plot([e.step for e in marked], [e.eval_loss for e in marked], "x", color="tab:orange",
                    markersize=8, mew=2, label="non-improving streak")
        finite = [v for v in values if math.isfinite(v)] or [0.0]
        top, bottom = max(finite), min(finite)
        bad = [e for e in evaluations if not math.isfinite(e.eval_loss)]
        if bad:
            ax.plot([e.step for e in bad], [bottom if e.eval_loss < 0 else top for e in bad], marker="$!$",
                    linestyle="none", color="tab:purple", markersize=10, label="non-finite eval_loss")
        if best_eval_loss is not None and analysis.best_step is not None:
            ax.plot([analysis.best_step], [best_eval_loss], "*", color="tab:green", markersize=16,
                    zorder=5, label=f"best @ step {analysis.best_step}")
        halt = analysis.halt_step
        if halt is not None:
            ax.axvline(halt, color="tab:red", linestyle=":", linewidth=1.4)
            if analysis.total_steps and analysis.total_steps > halt:
                ax.axvspan(halt, analysis.total_steps, color="tab:red", alpha=0.06, zorder=0,
                           label=f"not run: {analysis.total_steps - halt} steps refunded")
            at = analysis.eval_at(halt)
            y = evaluations[at - 1].eval_loss if at else math.nan
            ax.plot([halt], [y if math.isfinite(y) else top], "X", color="tab:red", markersize=11, zorder=6,
                    label=f"halted @ step {halt}")
        if analysis.total_steps:
            ax.set_xlim(0, max(analysis.total_steps, steps[-1] if steps else 0))
        ax.set_xlabel("step")
        ax.set_ylabel("eval_loss" if unit == 1.0 else f"eval_loss (× 1e{power})")
        ax.grid(True, color="0.9")
        ax.legend(loc="upper right", fontsize=8)
        if title:
            ax.set_title(title, fontsize=10)
        words = legend(analysis, UNICODE)[0]
        fig.text(0.01, 0.01, words.replace(UNICODE.best + " ", "").replace(UNICODE.halt + " ", ""), fontsize=9)
        fig.subplots_adjust(bottom=0.2)
        _save(fig, target)
    except (ArithmeticError, ValueError, np_error()) as exc:  # a history matplotlib cannot place
        raise ApiError(f"--plot {target}: could not draw this history ({type(exc).__name__}: {exc}); "
                       "the terminal chart and --json still show it") from None
    finally:
        plt.close(fig)
    return target


def np_error() -> type[Exception]:
    try:
        from numpy.linalg import LinAlgError
    except ImportError:  # pragma: no cover - matplotlib depends on numpy
        return ArithmeticError
    return LinAlgError


def _save(fig: object, target: Path) -> None:
    """Write beside the target and rename over it: a failed write (a full disk) leaves any
    previous file whole and no partial one behind."""
    import tempfile

    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=target.suffix.lower().lstrip("."), metadata=_metadata(target))  # type: ignore[attr-defined]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        raise ApiError(f"--plot {target}: could not write the file ({exc.strerror or exc})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _metadata(target: Path) -> dict[str, str | None]:
    # Reproducible files: no creation date (matplotlib would stamp one into SVG and PNG).
    return {"Date": None} if target.suffix.lower() == ".svg" else {"Software": "ftctl"}
