"""Figures the recipes write are readable as written: long titles stay inside the figure."""
from mser.scoring.plots import plot_confusions
from mser.utils.plotting import fitted_title, pyplot

RAVDESS_CLASSES = ["neu", "cal", "hap", "sad", "ang", "fea", "dis", "sur"]
LONG_TAG = "train_whisper_base_minilm_traingold_testasr_with_a_long_ablation_suffix (test)"


def inside(fig, artist):
    fig.canvas.draw()
    box = artist.get_window_extent(fig.canvas.get_renderer())
    width, height = fig.canvas.get_width_height()
    return box.x0 >= 0 and box.x1 <= width and box.y1 <= height


def test_a_long_title_is_wrapped_inside_a_narrow_figure():
    plt = pyplot()
    fig = plt.figure(figsize=(3, 2))
    plain = fig.suptitle(LONG_TAG)
    assert not inside(fig, plain)  # what stage 5 wrote before
    title = fitted_title(fig, LONG_TAG)
    assert inside(fig, title) and title.get_text().count("\n") >= 2
    lines = title.get_text().split("\n")
    assert "".join(lines).replace(" ", "") == LONG_TAG.replace(" ", "")
    assert all(line.endswith("_") for line in lines[:-1])  # broken between words
    plt.close(fig)


def test_confusion_plot_of_eight_classes_keeps_its_title_inside(tmp_path, monkeypatch):
    import numpy as np

    from mser.utils import plotting

    confusion = (np.eye(8) * 20 + 1).astype(int).tolist()
    result = {"pooled": {"confusion": confusion, "ua": 0.8, "wa": 0.8}, "folds": [{}] * 6}
    saved = {}
    monkeypatch.setattr("mser.scoring.plots.save_figure",
                        lambda fig, path, dpi: saved.update(fig=fig))
    plot_confusions(LONG_TAG, [("audio_only", result)], RAVDESS_CLASSES, tmp_path / "c.png")
    fig = saved["fig"]
    assert inside(fig, fig._suptitle)
    assert fig.get_size_inches()[0] >= 0.6 * len(RAVDESS_CLASSES)
    plotting.pyplot().close(fig)
