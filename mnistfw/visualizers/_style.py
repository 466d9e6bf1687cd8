"""Matplotlib set-up shared by the visualizers (headless backend, imported lazily)."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def image_sheet(
    images: Any,
    captions: list[str],
    title: str,
    *,
    cols: int | None = None,
    colors: list[str] | None = None,
    framed: list[bool] | None = None,
    cmap: str = "gray_r",
    limits: tuple[float, float] = (0.0, 255.0),
    tile_inches: float = 1.15,
) -> Any:
    """One figure showing ``images`` ``(n, h, w)`` as a grid, each tile with a caption above it.

    The tiles are pasted into one array and drawn with a single ``imshow`` (one axes instead of
    one per tile: a sheet of 64 tiles draws and saves in a fraction of the time). ``framed`` tiles
    get a red frame; ``colors`` colours the captions. Returns the matplotlib figure.
    """
    import math

    import numpy as np

    n, h, w = images.shape[0], images.shape[1], images.shape[2]
    cols = cols or math.ceil(math.sqrt(n))
    rows = max(1, math.ceil(n / cols))
    pad, top = max(2, w // 7), max(6, h // 2)  # gap between tiles; room for the caption above each
    cell_w, cell_h = w + pad, h + top
    background = 0.5 * (limits[0] + limits[1]) if cmap != "gray_r" else limits[0]
    mosaic = np.full((rows * cell_h, cols * cell_w), background, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        mosaic[r * cell_h + top : r * cell_h + top + h, c * cell_w + pad // 2 : c * cell_w + pad // 2 + w] = images[i]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(tile_inches * cols, tile_inches * 1.2 * rows + 0.4))
    ax.imshow(mosaic, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
    from matplotlib.patches import Rectangle

    for i in range(n):
        r, c = divmod(i, cols)
        x0, y0 = c * cell_w + pad // 2, r * cell_h + top
        ax.text(x0 + w / 2, y0 - 1, captions[i], ha="center", va="bottom", fontsize=7,
                color=(colors[i] if colors else "black"))
        if framed and framed[i]:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.5))
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return fig
