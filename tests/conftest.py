import matplotlib
import pytest

matplotlib.use("Agg")  # tests draw figures without a screen


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Every test gets its own empty data folder, so no test reads or writes the real data/."""
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "course-data"))
    yield


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def short_time_limit(monkeypatch):
    """Learner code gets 1 s instead of the exercises' ``TIME_LIMIT``: an endless-loop test waits 1 s, not 5."""
    from course_utils import exercises

    monkeypatch.setattr(exercises, "TIME_LIMIT", 1.0)
