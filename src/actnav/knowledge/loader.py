"""Load and validate the packaged clinical data files.

Every file is validated against its pydantic model when loaded; a failure raises
:class:`~actnav.errors.DataFileError` naming the file, the rule id when there is one, and the
field. Cross-file checks (every fact a criterion names exists, units match the fact's canonical
unit, every fact's work-up item exists, every source ref is declared) run in :func:`load_knowledge`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from actnav.errors import DataFileError
from actnav.knowledge.models import (
    Criterion,
    DoseBand,
    FactCatalogue,
    FactDefinition,
    FitnessFile,
    Lymphodepletion,
    Product,
    Reference,
    SourceRef,
    WorkupCatalogue,
    WorkupItem,
)

M = TypeVar("M", bound=BaseModel)

# Every data file read in this process (a test checks that each shipped file has a loader).
READ_FILES: set[str] = set()

# libyaml's C loader is about seven times faster; the pure-Python one is the fallback.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def data_root() -> Traversable:
    """The package's ``data`` folder."""
    return resources.files("actnav") / "data"


def read_yaml(path: Traversable, label: str | None = None) -> Any:
    """Parse one packaged YAML file, raising :class:`DataFileError` naming it on failure.

    Parsed content is cached on disk (``platformdirs.user_cache_dir("actnav")``), keyed by a
    SHA-256 of the file's bytes, because YAML parsing dominates the CLI's start-up; an edited file
    has a new key, and an unwritable cache folder only costs speed.
    """
    name = label or path.name
    READ_FILES.add(str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"cannot read: {exc}", where=name) from exc
    cached = _cache_path(raw)
    if cached is not None:
        try:
            with cached.open("rb") as fh:
                return pickle.load(fh)
        except (OSError, pickle.PickleError, EOFError, AttributeError, ValueError):
            pass  # missing or unreadable cache: parse the file
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_SafeLoader)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataFileError(f"cannot read YAML: {exc}", where=name) from exc
    if cached is not None:
        _write_cache(cached, data)
    return data


def _cache_path(raw: bytes) -> Path | None:
    if os.environ.get("ACTNAV_NO_CACHE") == "1":
        return None
    from platformdirs import user_cache_dir

    digest = hashlib.sha256(raw).hexdigest()
    return (
        Path(user_cache_dir("actnav"))
        / "yaml"
        / f"{digest}-py{sys.version_info[0]}{sys.version_info[1]}.pickle"
    )


def _write_cache(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only or full disk: the cache is an optimisation only


def load_data(model: type[M], name: str) -> M:
    """Read and validate one packaged data file, ``name`` relative to ``actnav/data``.

    Raises:
        DataFileError: the file is unreadable or fails ``model`` (naming file, rule and field).
    """
    path = data_root()
    for part in name.split("/"):
        path = path / part
    return parse_file(model, read_yaml(path, name), name)


def parse_file(model: type[M], data: Any, name: str) -> M:
    """Validate parsed data against ``model``; errors name the file, rule id and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        rule = _rule_id_at(data, loc)
        field = ".".join(str(part) for part in loc)
        where = f"{name}: rule {rule}: {field}" if rule else f"{name}: {field}"
        count = exc.error_count()
        more = f" (and {count - 1} more problems)" if count > 1 else ""
        raise DataFileError(f"{first['msg']}{more}", where=where) from exc


def _rule_id_at(data: Any, loc: tuple[Any, ...]) -> str | None:
    """The innermost ``id`` on the path to a validation error, to name the rule."""
    found: str | None = None
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            found = node["id"]
    return found


@dataclass(frozen=True)
class Knowledge:
    """All packaged clinical knowledge, validated and cross-checked."""

    products: tuple[Product, ...]
    fitness: FitnessFile
    facts: dict[str, FactDefinition]
    workup: WorkupCatalogue

    def product(self, product_id: str) -> Product:
        for product in self.products:
            if product.id == product_id:
                return product
        raise KeyError(product_id)

    def workup_item(self, item_id: str) -> WorkupItem:
        for item in self.workup.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)


@cache
def load_facts() -> dict[str, FactDefinition]:
    """The fact catalogue (``facts.yaml``) by fact id, checked against ``workup.yaml``.

    Raises:
        DataFileError: either file is invalid, or a fact names an unknown work-up item.
    """
    root = data_root()
    facts_file = parse_file(FactCatalogue, read_yaml(root / "facts.yaml"), "facts.yaml")
    item_ids = {item.id for item in load_workup().items}
    for fact in facts_file.facts:
        if fact.workup not in item_ids:
            raise DataFileError(f"unknown work-up item {fact.workup!r}", where=f"facts.yaml: {fact.id}")
    return {fact.id: fact for fact in facts_file.facts}


@cache
def load_workup() -> WorkupCatalogue:
    """The work-up catalogue (``workup.yaml``)."""
    return parse_file(WorkupCatalogue, read_yaml(data_root() / "workup.yaml"), "workup.yaml")


@cache
def load_knowledge() -> Knowledge:
    """Load every packaged data file once per process.

    Raises:
        DataFileError: a file is unreadable, fails its schema, or refers to an unknown fact,
            unit, work-up item or reference.
    """
    root = data_root()
    facts = load_facts()
    workup = load_workup()
    products = []
    product_dir = root / "products"
    for path in sorted(product_dir.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".yaml"):
            continue
        name = f"products/{path.name}"
        product = parse_file(Product, read_yaml(path, name), name)
        if f"{product.id}.yaml" != path.name:
            raise DataFileError(f"file name must be {product.id}.yaml", where=name)
        trees = [c for ind in product.indications for c in (*ind.criteria, *ind.limitations_of_use)]
        trees += list(product.contraindications)
        _check_trees(trees, facts, product.references, name)
        _check_refs(product, name)
        products.append(product)

    fitness_name = "fitness/pivotal-trials.yaml"
    fitness = parse_file(FitnessFile, read_yaml(root / "fitness" / "pivotal-trials.yaml"), fitness_name)
    for trial in fitness.trials:
        _check_trees(list(trial.criteria), facts, fitness.references, fitness_name)
        _check_source(trial.source, fitness.references, f"{fitness_name}: {trial.id}")
    product_ids = {p.id for p in products}
    for trial in fitness.trials:
        for pid in trial.products:
            if pid not in product_ids:
                raise DataFileError(f"unknown product {pid!r}", where=f"{fitness_name}: {trial.id}")
    return Knowledge(products=tuple(products), fitness=fitness, facts=facts, workup=workup)


def _check_trees(
    trees: list[Criterion],
    facts: dict[str, FactDefinition],
    references: dict[str, Reference],
    name: str,
) -> None:
    for tree in trees:
        for node in tree.walk():
            where = f"{name}: rule {node.id}"
            if node.source is not None:
                _check_source(node.source, references, where)
            if node.fact is None:
                continue
            fact = facts.get(node.fact)
            if fact is None:
                raise DataFileError(f"unknown fact {node.fact!r}", where=f"{where}: fact")
            if fact.type == "number":
                if node.unit != fact.unit:
                    raise DataFileError(
                        f"unit {node.unit!r} differs from the fact's unit {fact.unit!r}",
                        where=f"{where}: unit",
                    )
            elif node.unit is not None:
                raise DataFileError("only number facts take a unit", where=f"{where}: unit")
            if fact.values is not None:
                given = node.value if isinstance(node.value, tuple) else (node.value,)
                unknown = [v for v in given if v not in fact.values]
                if unknown:
                    raise DataFileError(
                        f"values {unknown} not allowed for {fact.id}", where=f"{where}: value"
                    )


def _check_source(source: SourceRef, references: dict[str, Reference], where: str) -> None:
    if source.ref not in references:
        raise DataFileError(f"unknown reference {source.ref!r}", where=f"{where}: source.ref")


def _check_refs(product: Product, name: str) -> None:
    sourced = [
        *((ind.id, ind.source) for ind in product.indications),
        *((f"dose[{i}]", d.source) for i, d in enumerate(product.dose)),
        *((f"lymphodepletion[{i}]", d.source) for i, d in enumerate(product.lymphodepletion)),
        *((f"boxed_warnings[{i}]", d.source) for i, d in enumerate(product.boxed_warnings)),
        *((f"monitoring[{i}]", d.source) for i, d in enumerate(product.monitoring)),
        *((f"rems[{i}]", d.source) for i, d in enumerate(product.rems)),
        *((f"label_revisions[{i}]", d.source) for i, d in enumerate(product.label_revisions)),
    ]
    for where, source in sourced:
        _check_source(source, product.references, f"{name}: {where}")
    indication_ids = {ind.id for ind in product.indications}
    bands: list[DoseBand | Lymphodepletion] = [*product.dose, *product.lymphodepletion]
    for i, band in enumerate(bands):
        for ind in band.applies_to:
            if ind not in indication_ids:
                raise DataFileError(f"unknown indication {ind!r}", where=f"{name}: applies_to[{i}]")
