"""The one method registry: every entry resolves, and the other lists agree with it."""

from __future__ import annotations

import pytest

from baselines import classical
from san import methods
from san.algorithms.registry import algorithm_class, algorithm_names


@pytest.mark.parametrize("name", methods.method_names())
def test_every_registered_path_resolves(name):
    method = methods.get_method(name)
    assert callable(methods.resolve(method.run))
    assert callable(methods.resolve(method.predictor))
    if method.resume is not None:
        assert callable(methods.resolve(method.resume))
    if method.deep:
        assert algorithm_class(name).__name__  # importing algorithm_module registered it
    if method.callbacks is not None:
        assert method.deep and callable(methods.resolve(method.callbacks))


def test_classical_estimators_are_exactly_the_registered_classical_methods():
    assert tuple(methods.method_names("classical")) == classical.METHODS


def test_every_deep_method_is_an_algorithm_and_families_are_known():
    assert set(methods.method_names(deep=True)) <= set(algorithm_names())
    assert set(methods.families().values()) <= set(methods.FAMILIES)


def test_unknown_method_names_the_registered_ones():
    with pytest.raises(methods.UnknownMethodError, match="registered: svm, rf"):
        methods.get_method("svn")
    assert methods.get_method("SVM").name == "svm"


def test_bad_import_path_is_an_import_error():
    with pytest.raises(ImportError, match="no attribute"):
        methods.resolve("san.methods:not_there")
