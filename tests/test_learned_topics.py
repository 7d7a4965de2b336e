"""The numpy pieces of benchmarks/learned_topics.py: the Gram matrix is X Xᵀ, the fit on it is
the primal L2 logistic regression's optimum, and the thresholds are where they should be."""

import numpy as np
import pytest

from benchmarks.learned_topics import best_f1_threshold, fit, gram_matrix, precision_threshold


def _dense(features: list[set[str]]) -> np.ndarray:
    vocab = sorted(set().union(*features))
    X = np.array([[f in fs for f in vocab] for fs in features], dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


FEATURES = [{"a", "b", "x1"}, {"a", "c"}, {"b", "c", "x2", "x3"}, {"a", "b", "c"}, {"d", "x4"}, {"d", "a"}]


def test_gram_matrix_is_x_xt_with_features_seen_once_on_the_diagonal():
    X = _dense(FEATURES)
    np.testing.assert_allclose(gram_matrix(FEATURES, chunk=2), X @ X.T, atol=1e-12)


def test_the_fit_on_the_gram_matrix_is_the_primal_optimum():
    X = _dense(FEATURES)
    y = np.array([[1.0], [0.0], [1.0], [1.0], [0.0], [0.0]])
    lam = np.array([0.05])
    a, b, converged = fit(X @ X.T, y, lam)
    assert converged
    w = X.T @ a
    p = 1 / (1 + np.exp(-(X @ w + b)))
    # the primal gradient (weights and bias) vanishes at the optimum
    np.testing.assert_allclose(X.T @ (p - y) / len(y) + lam * w, 0, atol=1e-4)
    np.testing.assert_allclose((p - y).mean(axis=0), 0, atol=1e-4)


def test_thresholds():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.2])
    y = np.array([True, True, False, True, False, False])
    # F1 is best taking the top four (3 of 3 found, one false): cut between 0.6 and 0.4
    assert best_f1_threshold(p, y) == pytest.approx(0.5)
    # precision stays 1.0 down to 0.8; 0.75 at 0.6 is under 0.95
    assert precision_threshold(p, y, 0.95) == pytest.approx(0.75)
    assert precision_threshold(p, y, 0.7) == pytest.approx(0.5)
