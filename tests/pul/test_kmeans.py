"""PUL's k-means (issue 20.5): the default is scikit-learn's KMeans with the original's arguments;
--kmeans faiss runs faiss.Kmeans and finds the same clusters when they are well separated."""
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from pul.selection import SelectionError, kmeans, select_reliable


def separated(n_per=30, k=12, dim=64, sigma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((k, dim)))           # non-negative, like avg_pool features
    truth = np.repeat(np.arange(k), n_per)
    return (centres[truth] + sigma * rng.standard_normal((len(truth), dim))).astype(np.float32), truth


def test_faiss_finds_scikit_learns_clusters_when_well_separated():
    pytest.importorskip("faiss")
    x, truth = separated()
    ref = kmeans(x, 12, seed=1, n_init=10)
    fa = kmeans(x, 12, seed=1, n_init=10, method="faiss")
    assert adjusted_rand_score(ref.labels, fa.labels) > 0.9
    assert adjusted_rand_score(truth, fa.labels) > 0.9
    # the same outputs as the default path: distances (N, K) to its centroids, labels their argmin
    assert fa.distances.shape == ref.distances.shape == (len(x), 12)
    np.testing.assert_array_equal(fa.labels, fa.distances.argmin(axis=1))
    d = np.linalg.norm(x.astype(np.float64)[:, None] - fa.centroids[None], axis=2)
    np.testing.assert_allclose(fa.distances, d, rtol=1e-9, atol=1e-9)
    assert fa.inertia == pytest.approx(ref.inertia, rel=1e-4)
    assert 1 <= fa.n_iter <= 300
    sel = select_reliable(x, fa, lam=0.85)                     # and the selection takes it
    assert sel.num_selected == len(x)


def test_default_is_scikit_learn_with_the_originals_arguments(monkeypatch):
    import sklearn.cluster
    seen = []

    class Recording(sklearn.cluster.KMeans):                   # the real KMeans, its arguments recorded
        def __init__(self, **kw):
            seen.append(kw)
            super().__init__(**kw)

    monkeypatch.setattr(sklearn.cluster, "KMeans", Recording)
    x, _ = separated(n_per=5, k=4, dim=8)
    c = kmeans(x, 4, seed=3)
    assert seen == [{"n_clusters": 4, "init": "k-means++", "n_init": 10, "max_iter": 300, "tol": 1e-4,
                     "random_state": 3}]
    assert c.labels.shape == (20,) and c.n_iter >= 1


def test_unknown_method_and_the_flag():
    with pytest.raises(SelectionError, match="unknown k-means method 'gpu'"):
        kmeans(np.ones((4, 2)), 2, method="gpu")
    from conftest import import_train_script
    options = import_train_script()            # examples/train.py, which takes its flags from options.py
    a = options.parse_args(["--dataset", "market", "--print-config"])
    assert a.kmeans == "sklearn" and a._config["kmeans"] == "sklearn"
    assert options.parse_args(["--dataset", "market", "--kmeans", "faiss"]).kmeans == "faiss"
