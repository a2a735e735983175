"""Benchmark jobs: what one job is, where it writes, how a grid expands, and how a job is executed.

A job is one (method, protocol, target river, seed). ``mixed`` trains and tests within every
river; ``loro`` (leave-one-river-out) holds one river out as the target and trains on the others,
so it expands to one job per river. A job writes the run directory ``<out>/<method>/<protocol>
[-<target>]/seed<seed>``, e.g. ``runs/bench/san/loro-yangtze/seed0``. The tables' leave-one-source-out
selection rule needs, per loro job, one ``loso`` job per source river trained on the other sources
(:func:`loso_jobs`), e.g. ``runs/bench/san/loso-pengqu-from-yarlung/seed0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.names import canonical_domain, ordered_domains, parse_name_list
from san import methods
from san.runs.config import CONFIG_DIR, read_yaml, resolve_config
from san.runs.settings import flatten, settings_changes

if TYPE_CHECKING:
    from san.runs.lifecycle import RunRequest

# Named once, in the method registry; these views keep the names other modules import.
CLASSICAL_METHODS: tuple[str, ...] = tuple(methods.method_names("classical"))
ALL_METHODS: tuple[str, ...] = tuple(methods.method_names())
METHOD_FAMILIES: dict[str, str] = methods.families()
BENCHMARK_PROTOCOLS: tuple[str, ...] = ("mixed", "loro")
PRESETS: tuple[str, ...] = ("cpu", "cpu-recipe", "paper")


# Minutes per job of the 2026-11-21 CPU grid on 2 cores (README): VGG-16 about 13, the pair
# networks 4, ResNet34 3.3, a classical method 0.13; the published protocol trains two networks.
RELATIVE_COST: dict[str, float] = {
    "vgg16": 13.0,
    "resnet34": 3.3,
    "published": 8.0,
    "erm": 4.0,
    "san": 4.0,
    "dg": 4.0,
    "classical": 0.13,
}


class GridError(ValueError):
    """A benchmark grid names an unknown method, protocol, river or seed, or cannot be built from the data."""


@dataclass(frozen=True)
class Job:
    """One benchmark job. ``sources`` are the training rivers (every river but the target)."""

    method: str
    protocol: str
    target: str | None
    seed: int
    sources: tuple[str, ...]

    @property
    def task(self) -> str:
        """The protocol with its target, as in the directory name: ``mixed``, ``loro-yangtze`` or
        ``loso-pengqu-from-yarlung`` (held-out source, then the rivers trained on)."""
        if self.protocol == "loso":
            return f"loso-{self.target}-from-{'+'.join(self.sources)}"
        return self.protocol if self.target is None else f"{self.protocol}-{self.target}"

    @property
    def name(self) -> str:
        """The job's name, its run directory relative to the output folder: ``san/loro-yangtze/seed0``."""
        return f"{self.method}/{self.task}/seed{self.seed}"

    def run_dir(self, out: str | Path) -> Path:
        """The job's run directory under ``out``."""
        return Path(out) / self.method / self.task / f"seed{self.seed}"

    @property
    def overrides(self) -> tuple[str, ...]:
        """Config overrides of this job beyond the grid's own (none for a plain benchmark job)."""
        return ()

    @property
    def expected_cost(self) -> float:
        """Rough relative CPU cost of the job, for running the longest jobs first (only the order of a
        grid and its remaining-time estimate depend on it): :data:`RELATIVE_COST` of its method or
        family, times 1.5 for ``mixed``, which trains on every river's training part, and 0.5 for
        ``loso``, which trains on one river fewer than its loro job."""
        family = METHOD_FAMILIES.get(self.method, "")
        cost = RELATIVE_COST.get(self.method, RELATIVE_COST.get(family, 1.0))
        return cost * {"mixed": 1.5, "loso": 0.5}.get(self.protocol, 1.0)

    def as_dict(self) -> dict[str, Any]:
        """The job as plain data (for failure records and logs)."""
        return asdict(self) | {"sources": list(self.sources), "name": self.name}


def parse_methods(text: str) -> list[str]:
    """``all``, or a comma-separated list of method names and family names (a family stands for its
    methods in registry order: ``classical``, ``cnn``, ``erm``, ``san``, ``dg``, ``published``) -> the
    methods, in the given order.

    Raises:
        GridError: an unknown name (the message lists the known ones), or an empty list.
    """
    names = [n.lower() for n in parse_name_list(text)]
    if names == ["all"]:
        return list(ALL_METHODS)
    expanded: list[str] = []
    for name in names:
        expanded += methods.method_names(name) if name in methods.FAMILIES else [name]
    if unknown := [n for n in expanded if n not in ALL_METHODS]:
        raise GridError(
            f"--methods: unknown method(s) {', '.join(unknown)}; known: all, the families "
            f"{', '.join(methods.FAMILIES)}, and {', '.join(ALL_METHODS)}"
        )
    names = expanded
    if not names:
        raise GridError(f"--methods: expected 'all' or some of {', '.join(ALL_METHODS)}, got {text!r}")
    return list(dict.fromkeys(names))


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ranges such as ``0-4`` -> the distinct seeds in the given order.

    Raises:
        GridError: an item is not a non-negative integer or range.
    """
    seeds: list[int] = []
    for item in parse_name_list(text):
        low, _, high = item.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise GridError(f"--seeds: {item!r} is not a non-negative integer or a range like 0-4")
        seeds.extend(range(int(low), int(high or low) + 1))
    if not seeds:
        raise GridError(f"--seeds: expected integers like 0,1,2, got {text!r}")
    return list(dict.fromkeys(seeds))


def parse_protocols(text: str) -> list[tuple[str, str | None]]:
    """``mixed``, ``loro`` (every river in turn) or ``loro-<river>`` items -> (protocol, river or None).

    Raises:
        GridError: an unknown protocol.
    """
    specs: list[tuple[str, str | None]] = []
    for item in parse_name_list(text):
        protocol, _, river = item.partition("-")
        if protocol.lower() not in BENCHMARK_PROTOCOLS or (protocol.lower() == "mixed" and river):
            raise GridError(f"--protocols: unknown protocol {item!r}; expected mixed, loro or loro-<river>")
        specs.append((protocol.lower(), river or None))
    if not specs:
        raise GridError(f"--protocols: expected mixed, loro or loro-<river>, got {text!r}")
    return specs


def _canonical_rivers(names: Sequence[str], rivers: Sequence[str], flag: str) -> list[str]:
    chosen = [canonical_domain(n) for n in names]
    if unknown := [n for n, c in zip(names, chosen, strict=True) if c not in rivers]:
        raise GridError(f"{flag}: unknown river(s) {', '.join(unknown)}; the data hold: {', '.join(rivers)}")
    return chosen


def expand_grid(
    methods: Sequence[str],
    protocols: Sequence[tuple[str, str | None]],
    rivers: Sequence[str],
    seeds: Sequence[int],
    targets: Sequence[str] | None = None,
) -> list[Job]:
    """Every job of the grid, seed by seed (so early results cover every method), methods in the given order.

    Args:
        methods: method names (see :func:`parse_methods`).
        protocols: (protocol, river or None) pairs from :func:`parse_protocols`.
        rivers: the data's rivers.
        seeds: the seeds.
        targets: if given, only these held-out rivers for ``loro`` (``mixed`` jobs are unaffected).

    Raises:
        GridError: ``loro`` with fewer than two rivers, or an unknown river.
    """
    rivers = ordered_domains(rivers)
    allowed = set(_canonical_rivers(targets, rivers, "--targets")) if targets else set(rivers)
    tasks: list[tuple[str, str | None]] = []
    for protocol, river in protocols:
        if protocol == "mixed":
            tasks.append(("mixed", None))
            continue
        if len(rivers) < 2:
            raise GridError(
                f"leave-one-river-out needs at least two rivers; the data hold only {', '.join(rivers)}"
            )
        held_out = _canonical_rivers([river], rivers, "--protocols") if river else rivers
        tasks.extend(("loro", r) for r in held_out if r in allowed)
    return [
        Job(method, protocol, target, seed, tuple(r for r in rivers if r != target))
        for seed in dict.fromkeys(seeds)
        for protocol, target in dict.fromkeys(tasks)
        for method in dict.fromkeys(methods)
    ]


def loso_jobs(jobs: Sequence[Job]) -> list[Job]:
    """The leave-one-source-out validation jobs of the deep loro jobs with at least two sources: for
    each source s, the same method and seed trained on the other sources and scored on s (protocol
    ``loso``), each once, in the order of ``jobs``."""
    found: dict[Job, None] = {}
    for job in jobs:
        if job.protocol != "loro" or len(job.sources) < 2 or not methods.get_method(job.method).deep:
            continue
        for held_out in job.sources:
            rest = tuple(r for r in job.sources if r != held_out)
            found[Job(job.method, "loso", held_out, job.seed, rest)] = None
    return list(found)


@dataclass(frozen=True)
class BenchmarkData:
    """What the benchmark needs to know about its data before any job runs."""

    rivers: list[str]
    manifest_hash: str
    n_pairs: int
    synthetic: bool


def open_benchmark_data(data: str | None) -> BenchmarkData:
    """Open ``--data`` once (the built-in synthetic set when None) to learn its rivers.

    Raises:
        FileNotFoundError, data_tools.manifest_io.ManifestError: as ``load_dataset``.
    """
    # The data libraries load here, not at import: a command line is built from this module's names.
    from data_tools.manifest import manifest_hash
    from data_tools.manifest_io import load_dataset

    if data is None:
        from data_tools.synthetic import default_dataset  # imported only when needed

        dataset = load_dataset(default_dataset(), progress=False)
    else:
        dataset = load_dataset(data, progress=False)
    manifest = dataset.manifest
    return BenchmarkData(
        ordered_domains(manifest["domain"]), manifest_hash(manifest), len(manifest), synthetic=data is None
    )


def preset_file(preset: str) -> Path:
    """The config file of a preset: ``configs/presets/<preset>.yaml``.

    Raises:
        GridError: an unknown preset.
    """
    if preset not in PRESETS:
        raise GridError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return CONFIG_DIR / "presets" / f"{preset}.yaml"


# Every grid job scores test and target after each epoch (off for a single run, where nothing reads
# them): the tables' leave-one-source-out and oracle selection rules need those per-epoch scores.
GRID_OVERRIDES: tuple[str, ...] = ("training.epoch_scores=true",)


@dataclass(frozen=True)
class JobExecutor:
    """Runs one job and returns its record through the runner the method registry names for it
    (:mod:`san.methods`: deep methods via :mod:`san.training.experiment`, classical ones via
    ``baselines.experiment``, resolved by import path). Picklable, so worker processes can run it.
    """

    data: str | None
    preset: str
    out: str
    wandb_mode: str = "offline"
    overrides: tuple[str, ...] = ()
    device: str = "auto"
    wandb_artifacts: bool = False

    def request(self, job: Job, run_dir: Path) -> RunRequest:
        """The RunRequest of a job (the same a user would build with train_san.py's flags)."""
        from san.runs.lifecycle import RunRequest

        return RunRequest(
            method=job.method,
            data=self.data,
            domains=list(job.sources),
            targets=[job.target] if job.target else None,
            protocol=job.protocol,
            seed=job.seed,
            config_file=str(preset_file(self.preset)),
            overrides=list(self.all_overrides),
            out=self.out,
            run_dir=str(run_dir),
            wandb_mode=self.wandb_mode,
            wandb_artifacts=self.wandb_artifacts,
            tags=["benchmark"],
            device=self.device,
            progress=False,
        )

    @property
    def all_overrides(self) -> tuple[str, ...]:
        """:data:`GRID_OVERRIDES`, then the grid's own (``--set``), which may undo them."""
        return (*GRID_OVERRIDES, *self.overrides)

    def check_settings(self, jobs: Sequence[Job]) -> None:
        """Resolve and type-check the config of every method and override set among ``jobs``, so that a
        typo fails the command at once rather than every job after the output folder is claimed.

        Raises:
            san.runs.config.ConfigError: an unknown key, a mistyped or out-of-range value.
        """
        from san.runs.config_types import check_config_types

        for method, extra in sorted({(job.method, tuple(job.overrides)) for job in jobs}):
            defaults = methods.default_hparams(method)
            config, _ = resolve_config(
                method,
                config_file=preset_file(self.preset),
                overrides=(*self.all_overrides, *extra),
                hparam_names=defaults,
            )
            check_config_types(config, defaults)  # keys left to the defaults are right by definition

    def changed_settings(self, job: Job, record: dict[str, Any]) -> list[str]:
        """How the config recorded by a finished run of ``job`` differs from what the job would use now
        (e.g. after an edit of the preset file); empty when the run is current.

        Raises:
            san.runs.config.ConfigError: a config file is missing or invalid.
        """
        expected, _ = resolve_config(job.method, config_file=preset_file(self.preset))
        # A key a run's record lacks (the code gained it later) counts as its base.yaml value, which
        # is what that older code did; the run is stale only if the job would now use another.
        defaults = flatten(read_yaml(CONFIG_DIR / "base.yaml"))
        defaults.update({f"hparams.{k}": v for k, v in methods.default_hparams(job.method).items()})
        return settings_changes(
            record.get("config") or {}, expected, (*self.all_overrides, *job.overrides), defaults
        )

    def __call__(self, job: Job, run_dir: Path, resume: bool) -> dict[str, Any]:
        """Run (or, with ``resume``, continue from its checkpoint) one job; returns its record.

        Raises:
            san.methods.UnknownMethodError: the job names no registered method. Whatever the run raises.
        """
        # The runners are imported here, by path: the tables and planning import this module too, and
        # must not pull in torch.
        method = methods.get_method(job.method)
        if resume and method.resume is not None:
            resume_run = methods.resolve(method.resume)
            return resume_run(run_dir, device=self.device, wandb_mode=self.wandb_mode, progress=False)
        return methods.resolve(method.run)(self.request(job, run_dir))
