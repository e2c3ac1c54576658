"""Confusion matrices of an experiment's conditions, side by side."""
import numpy as np

from mser.utils.plotting import fitted_title, pyplot, save_figure


def plot_confusions(tag, panels, classes, path):
    """One confusion matrix (row-normalised, counts in brackets) per ``(name, result)`` panel."""
    plt = pyplot()
    side = max(4.2, 0.6 * len(classes) + 1.2)  # 8 classes: cells wide enough for their labels
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels), side), squeeze=False)
    for ax, (name, result) in zip(axes[0], panels):
        counts = np.array(result["pooled"]["confusion"], dtype=float)
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{100 * rates[i, j]:.0f}%\n({int(counts[i, j])})", ha="center",
                        va="center", fontsize=8, color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{name}: UA {100 * result['pooled']['ua']:.1f} WA {100 * result['pooled']['wa']:.1f}")
    fitted_title(fig, f"{tag} (pooled over {len(panels[0][1]['folds'])} folds)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
