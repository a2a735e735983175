"""Classical classifiers on feature tables: scikit-learn pipelines tuned by a stratified grid search.

The grid search sees only the training rows it is given (the caller passes the training part of
the training domains: never a test split, never a target river). Its folds are stratified and
shuffled with the run's seed; the best setting is refitted on all the training rows.

An optional resampler (SMOTE and its variants, random over/undersampling; imbalanced-learn) is a
pipeline step, so the search fits it on each training fold only and never on a held-out fold.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE, RandomOverSampler
from imblearn.pipeline import Pipeline as ResamplingPipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("svm", "rf", "knn", "dt", "cart")
CLASS_WEIGHTS: tuple[str | None, ...] = (None, "balanced")
RESAMPLERS: tuple[str, ...] = ("none", "smote", "borderline-smote", "adasyn", "random-over", "random-under")
SMOTE_NEIGHBOURS = 5  # imbalanced-learn's default k; reduced when the smallest class is smaller

# Modest grids: the benchmark fits every method about a dozen times on two cores. Trees differ
# mostly by how far they are pruned, less by depth caps (a full tree here is ~15-20 deep).
_TREE_GRID: dict[str, list[Any]] = {"max_depth": [None, 10], "min_samples_leaf": [1, 3, 6]}
_GRIDS: dict[str, dict[str, list[Any]]] = {
    "svm": {"C": [1.0, 10.0, 100.0], "gamma": [1e-4, 1e-3, 1e-2]},  # standardised: 'scale' = 1/n_features
    "rf": {"max_features": ["sqrt", "log2"], "min_samples_leaf": [1, 3]},
    "knn": {"n_neighbors": [1, 3, 5, 9, 15], "weights": ["uniform", "distance"]},
    "dt": _TREE_GRID,
    "cart": _TREE_GRID,
}
RF_TREES = 200


def _estimator(method: str, class_weight: str | None, seed: int) -> Any:
    if method == "svm":
        # No probability=True (deprecated in scikit-learn 1.9): probabilities come from wrapping the
        # refitted pipeline in CalibratedClassifierCV, see _fit_with_probabilities.
        return SVC(kernel="rbf", class_weight=class_weight, random_state=seed)
    if method == "rf":
        return RandomForestClassifier(n_estimators=RF_TREES, class_weight=class_weight, random_state=seed)
    if method == "knn":
        if class_weight is not None:
            log.warning("knn has no class weighting: class_weight=%r is ignored", class_weight)
        return KNeighborsClassifier()
    if method in ("dt", "cart"):
        criterion = "entropy" if method == "dt" else "gini"  # dt: information gain (ID3/C4.5-like)
        return DecisionTreeClassifier(criterion=criterion, class_weight=class_weight, random_state=seed)
    raise ValueError(f"unknown classical method {method!r}; expected one of {', '.join(METHODS)}")


class AdasynOrSmote(ADASYN):
    """ADASYN, falling back to SMOTE (same k) on data where a class has no neighbour of another class:
    ADASYN's density ratio is then undefined and imbalanced-learn raises (well-separated classes)."""

    def _fit_resample(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            return super()._fit_resample(X, y)
        except RuntimeError as error:
            if "neigbours" not in str(error) and "neighbours" not in str(error):
                raise
            warnings.warn(
                "adasyn: a class has no neighbour of another class in this training fold; "
                "SMOTE used for it instead",
                RuntimeWarning,
                stacklevel=2,
            )
            smote = SMOTE(
                sampling_strategy=self.sampling_strategy,
                random_state=self.random_state,
                k_neighbors=self.n_neighbors,
            )
            return smote.fit_resample(X, y)


def make_resampler(name: str, seed: int, smallest_class: int | None = None) -> tuple[Any, dict[str, Any]]:
    """An imbalanced-learn resampler (None for ``none``) and a description of what it is.

    ``smallest_class`` is the size of the smallest class the resampler will see (in the smallest
    training fold). The neighbour-based methods (smote, borderline-smote, adasyn) need more samples
    than neighbours in every class they oversample: k is reduced to ``smallest_class - 1``, and
    below 1 random oversampling is used instead; both with a warning.

    Raises:
        ValueError: an unknown resampler name.
    """
    if name not in RESAMPLERS:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLERS)}, got {name!r}")
    if name == "none":
        return None, {"method": "none"}
    if name == "random-over":
        return RandomOverSampler(random_state=seed), {"method": name}
    if name == "random-under":
        return RandomUnderSampler(random_state=seed), {"method": name}
    k = SMOTE_NEIGHBOURS if smallest_class is None else min(SMOTE_NEIGHBOURS, smallest_class - 1)
    if k < 1:
        log.warning(
            "%s needs two samples of every class in each training fold (smallest has %s): "
            "using random oversampling instead",
            name,
            smallest_class,
        )
        return RandomOverSampler(random_state=seed), {"method": "random-over", "requested": name}
    if k < SMOTE_NEIGHBOURS:
        log.warning(
            "%s: smallest class has %d sample(s) per training fold; k_neighbors reduced to %d",
            name,
            smallest_class,
            k,
        )
    if name == "adasyn":
        return AdasynOrSmote(n_neighbors=k, random_state=seed), {"method": name, "k_neighbors": k}
    sampler = SMOTE if name == "smote" else BorderlineSMOTE
    return sampler(k_neighbors=k, random_state=seed), {"method": name, "k_neighbors": k}


def _assemble(
    method: str, class_weight: str | None, seed: int, resampler: Any
) -> tuple[Pipeline, dict[str, list[Any]]]:
    if class_weight not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {class_weight!r}")
    model = _estimator(method, class_weight, seed)
    # Distances and RBF kernels need comparable feature scales; trees are scale-invariant. Scaling
    # comes first so that SMOTE's neighbours are found in the scaled space.
    steps = [("scale", StandardScaler())] if method in ("svm", "knn") else []
    grid = {f"model__{name}": list(values) for name, values in _GRIDS[method].items()}
    if resampler is None:
        return Pipeline([*steps, ("model", model)]), grid
    return ResamplingPipeline([*steps, ("resample", resampler), ("model", model)]), grid


def make_pipeline_and_grid(
    method: str,
    *,
    class_weight: str | None = None,
    seed: int = 0,
    resample: str = "none",
    smallest_class: int | None = None,
) -> tuple[Pipeline, dict[str, list[Any]]]:
    """An unfitted pipeline (``scale`` step for svm and knn, then ``resample`` unless ``none``, then
    ``model``) and its search grid.

    Grid keys are pipeline parameters (``model__C``). With a resampler the pipeline is imbalanced-learn's,
    which resamples only while fitting, never when predicting; ``smallest_class``: see
    :func:`make_resampler`. Raises ValueError for an unknown method, class weighting or resampler.
    """
    return _assemble(method, class_weight, seed, make_resampler(resample, seed, smallest_class)[0])


@dataclass
class FittedClassical:
    """A tuned and refitted classical classifier and what the search chose.

    ``estimator`` is the pipeline refitted on all training rows with ``best_params`` (for svm,
    wrapped in a sigmoid calibration); it has ``predict_proba`` whose columns follow ``classes``.
    ``cv_score`` is the best mean cross-validated score; ``grid_size`` the number of settings
    tried; ``param_grid`` and ``best_params`` use the model's own parameter names and are
    JSON-serialisable; ``resampling`` says which resampler was used (and its k); ``cv_left_out``
    lists the classes too small for the folds, left out of the search but not of the final fit.
    """

    method: str
    estimator: ClassifierMixin
    best_params: dict[str, Any]
    cv_score: float
    grid_size: int
    cv_folds: int
    classes: list[Any]
    param_grid: dict[str, list[Any]] = field(default_factory=dict)
    resampling: dict[str, Any] = field(default_factory=lambda: {"method": "none"})
    cv_left_out: list[Any] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _model_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name.removeprefix("model__"): _plain(value) for name, value in params.items()}


def _fit_with_probabilities(
    pipeline: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    splitter: StratifiedKFold,
    class_names: Sequence[str] | None = None,
) -> CalibratedClassifierCV:
    """Fit a decision-function classifier with Platt-scaled (sigmoid) probabilities.

    ``ensemble=False``: the sigmoids are fitted on out-of-fold decision values (the search's folds
    where every class can fill them, with the scaler inside each fold) and one pipeline is refitted
    on all rows, so the model evaluated is the one that was tuned, and its ``predict`` is the argmax
    of ``predict_proba``.
    Out-of-fold decision values need every class in every training fold and scikit-learn wants as
    many samples per class as folds: a class with a single sample has that sample repeated once
    (doubling its weight in the fit), and the calibration uses fewer folds than the search when a
    class is smaller than the search's folds; both with a warning.
    """
    labels, counts = np.unique(y, return_counts=True)
    single = np.isin(y, labels[counts == 1])
    if single.any():
        log.warning(
            "class(es) %s have one training sample: repeated once for the probability calibration",
            _named(labels[counts == 1], counts[counts == 1], class_names),
        )
        X, y = np.concatenate([X, X[single]]), np.concatenate([y, y[single]])
    folds = min(splitter.get_n_splits(), int(np.maximum(counts, 2).min()))
    if folds < splitter.get_n_splits():
        log.warning(
            "probability calibration uses %d folds (the smallest class has %d sample(s))",
            folds,
            int(counts.min()),
        )
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=splitter.random_state)
    calibrated = CalibratedClassifierCV(pipeline, method="sigmoid", cv=splitter, ensemble=False)
    return calibrated.fit(X, y)


def _named(labels: Sequence[Any], counts: Sequence[int], class_names: Sequence[str] | None) -> str:
    """'Spn (1 sample), Ap (3 samples)' for messages; integer labels are looked up in ``class_names``."""

    def name(label: Any) -> str:
        return str(class_names[int(label)]) if class_names is not None else str(label)

    return ", ".join(
        f"{name(label)} ({count} sample{'s' if count != 1 else ''})"
        for label, count in zip(labels, counts, strict=True)
    )


def _plan_folds(
    y: np.ndarray, requested: int, class_names: Sequence[str] | None = None
) -> tuple[int, list[Any]]:
    """Stratified folds of the search and the classes left out of it.

    The folds are the largest k <= ``requested`` that at least two classes can fill (k samples each).
    A class with fewer than k samples cannot be in the training and the held-out part of every fold,
    so its cross-validated score is noise: it is left out of the search (named in a warning) rather
    than cutting the folds for every other class; the final fit still uses it.
    """
    labels, counts = np.unique(y, return_counts=True)
    if len(counts) < 2:
        raise ValueError(f"training labels hold {len(counts)} class(es); a classifier needs at least 2")
    folds = min(requested, int(np.sort(counts)[-2]))  # the second-largest class caps k
    if folds < 2:
        raise ValueError(
            "cross-validation needs two classes with at least 2 training samples each; "
            f"training classes: {_named(labels, counts, class_names)}"
        )
    if folds < requested:
        log.warning(
            "only one class has %d or more training samples: grid search uses %d folds instead of %d",
            requested,
            folds,
            requested,
        )
    small = counts < folds
    if small.any():
        log.warning(
            "class(es) %s have fewer training samples than the %d grid-search folds: left out of the "
            "search (hyper-parameters chosen on the other classes), still used in the final fit",
            _named(labels[small], counts[small], class_names),
            folds,
        )
    return folds, [_plain(label) for label in labels[small]]


def _feasible_grid(grid: dict[str, list[Any]], n_train: int, folds: int) -> dict[str, list[Any]]:
    """Drop neighbour counts larger than the smallest training fold."""
    key = "model__n_neighbors"
    if key not in grid:
        return grid
    largest = n_train - -(-n_train // folds)  # training rows left when the biggest fold is held out
    kept = [k for k in grid[key] if k <= largest] or [1]
    return {**grid, key: kept}


def _smallest_fold_class(y: np.ndarray, folds: int) -> int:
    """Samples of the smallest class left in a training fold when its largest share is held out."""
    _, counts = np.unique(y, return_counts=True)
    return int((counts - -(-counts // folds)).min())


def fit_classical(
    method: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    *,
    seed: int,
    class_weight: str | None = None,
    cv_folds: int = 5,
    n_jobs: int = 1,
    scoring: str = "accuracy",
    resample: str = "none",
    class_names: Sequence[str] | None = None,
) -> FittedClassical:
    """Choose hyper-parameters by stratified grid search on the training rows, then refit on all.

    Args:
        X_train, y_train: the training rows only (features, class labels of any sortable type).
        seed: seeds the fold shuffling and every randomised estimator.
        class_weight: None or ``'balanced'`` (ignored by knn, with a warning).
        cv_folds: requested folds; fewer only when fewer than two classes have that many samples.
            Classes with fewer samples than the folds are left out of the search (not of the final
            fit), with a warning naming them: see :func:`_plan_folds`.
        n_jobs: parallel fits in the search.
        scoring: scikit-learn scorer used to rank the settings.
        resample: one of :data:`RESAMPLERS`, a pipeline step fitted on training folds only.
        class_names: names of the integer labels 0..n-1, for the warnings (default: the labels).

    Returns:
        FittedClassical with the refitted pipeline and the chosen setting.

    Raises:
        ValueError: unknown method, class weighting or resampler, mismatched X/y lengths, fewer than two
            classes, or fewer than two classes with two samples.
    """
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    if len(X_train) != len(y_train):
        raise ValueError(f"X_train has {len(X_train)} rows but y_train has {len(y_train)} labels")
    folds, left_out = _plan_folds(y_train, cv_folds, class_names)
    searched = ~np.isin(y_train, left_out)
    # Sized for the smallest class of the final fit's folds too (the calibration reuses the splitter).
    resampler, resampling = make_resampler(resample, seed, _smallest_fold_class(y_train, folds))
    pipeline, grid = _assemble(method, class_weight, seed, resampler)
    grid = _feasible_grid(grid, int(searched.sum()), folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    search = GridSearchCV(
        pipeline, grid, scoring=scoring, refit=False, n_jobs=n_jobs, cv=splitter, error_score="raise"
    )
    with warnings.catch_warnings():  # sklearn warns about the left-out classes' absence; we did already
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        search.fit(X_train[searched], y_train[searched])

    estimator = clone(pipeline).set_params(**search.best_params_)
    if method == "svm":
        estimator = _fit_with_probabilities(estimator, X_train, y_train, splitter, class_names)
    else:
        estimator.fit(X_train, y_train)
    n_settings = int(np.prod([len(values) for values in grid.values()]))
    plain_grid = {name.removeprefix("model__"): [_plain(v) for v in values] for name, values in grid.items()}
    return FittedClassical(
        method=method,
        estimator=estimator,
        best_params=_model_params(search.best_params_),
        cv_score=float(search.best_score_),
        grid_size=n_settings,
        cv_folds=folds,
        classes=[_plain(c) for c in estimator.classes_],
        param_grid=plain_grid,
        resampling=resampling,
        cv_left_out=left_out,
    )
