"""Terminology tables for the FHIR importer: code systems, units, labs, observations, diagnoses,
drugs and HLA P groups, each a validated YAML file under ``actnav/data/terminology/``.

Each file is read once per process, on first use (never at import: the CLI must start fast), and
validated against the pydantic models below, which forbid unknown keys. A broken file raises
:class:`~actnav.errors.DataFileError` naming the file, the entry and the field (exit code 3).

The matching functions here are pure: they take codes and text and return what the tables say.
They know nothing about FHIR resources; :mod:`actnav.patient.fhir` calls them.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.errors import DataFileError
from actnav.knowledge.models import Reference, SourceRef
from actnav.patient.models import Coding, DiseaseStatus, FindingValue, TransplantType

DrugClass = Literal[
    "chemotherapy",
    "anthracycline",
    "alkylating_agent",
    "anti_cd20",
    "anti_cd38",
    "proteasome_inhibitor",
    "imid",
    "anti_pd1",
    "anti_pdl1",
    "anti_ctla4",
    "braf_inhibitor",
    "mek_inhibitor",
    "btk_inhibitor",
    "bcl2_inhibitor",
    "car_t",
    "cd19_directed",
    "bcma_directed",
    "bispecific_antibody",
    "tyrosine_kinase_inhibitor",
    "corticosteroid",
]
#: The drug class vocabulary, in the order classes are reported.
DRUG_CLASSES: tuple[str, ...] = DrugClass.__args__  # type: ignore[attr-defined]

SystemKey = Literal[
    "loinc", "snomed", "icd10cm", "icd10", "icdo3", "rxnorm", "ncit", "hgnc", "hgvs",
    "cvx", "ndc", "ucum", "imgt_hla", "glstring", "actnav",
]  # fmt: skip
ObservationKind = Literal[
    "disease_status", "stage_group", "unresectable", "genetic_variant", "finding", "hla"
]

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DataFile(_Strict):
    schema_version: Literal[1]
    version: str
    references: dict[str, Reference] = Field(default_factory=dict)
    remarks: str | None = None

    @model_validator(mode="after")
    def _sources_are_declared(self) -> _DataFile:
        # Every `source.ref` anywhere in the file must name a declared reference.
        for ref, where in _source_refs(self):
            if ref not in self.references:
                raise ValueError(f"unknown reference {ref!r} at {where}")
        return self


def _source_refs(node: object, where: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(node, SourceRef):
        yield node.ref, where
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _source_refs(getattr(node, name), f"{where}.{name}".lstrip("."))
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            yield from _source_refs(item, f"{where}[{i}]")
    elif isinstance(node, dict):
        for key, item in node.items():
            if key != "references":
                yield from _source_refs(item, f"{where}.{key}")


# -- code-systems.yaml -------------------------------------------------------------------------


class CodeSystem(_Strict):
    """A code system actnav accepts, by canonical URI (and accepted aliases)."""

    key: SystemKey
    name: str
    uri: str
    aliases: tuple[str, ...] = ()
    source: SourceRef


class SystemPrefix(_Strict):
    """A URI prefix under which every system is accepted (``terminology.hl7.org``)."""

    name: str
    prefix: str
    source: SourceRef


class CodeSystemsFile(_DataFile):
    systems: tuple[CodeSystem, ...]
    prefixes: tuple[SystemPrefix, ...] = ()


# -- units.yaml --------------------------------------------------------------------------------


class UnitEntry(_Strict):
    """One accepted UCUM unit and the pint expression that means the same."""

    ucum: str
    pint: str
    source: SourceRef


class MolarMass(_Strict):
    """Molar mass of an analyte, for mass <-> substance concentration (g/mol)."""

    analyte: str
    g_per_mol: float = Field(gt=0)
    formula: str
    source: SourceRef


class UnitsFile(_DataFile):
    units: tuple[UnitEntry, ...]
    text_aliases: dict[str, str] = Field(default_factory=dict)
    text_refused: tuple[str, ...] = ()
    molar_masses: tuple[MolarMass, ...] = ()

    @model_validator(mode="after")
    def _aliases_point_to_units(self) -> UnitsFile:
        known = {u.ucum for u in self.units}
        for alias, target in self.text_aliases.items():
            if target not in known:
                raise ValueError(f"text alias {alias!r} points to unknown unit {target!r}")
        return self


# -- labs.yaml ---------------------------------------------------------------------------------


class Plausible(_Strict):
    """The range a value of an analyte can physically take, in its canonical unit.

    A value outside it is a data-entry or unit error, never a result: the importer refuses it.
    ``min`` is never negative (no count, concentration, activity, score or body measure is);
    ``integer`` marks scores that are whole numbers (ECOG, Karnofsky).
    """

    min: float = Field(ge=0)
    max: float
    integer: bool = False
    source: SourceRef

    @model_validator(mode="after")
    def _ordered(self) -> Plausible:
        if not self.max > self.min:
            raise ValueError(f"plausible max {self.max} must be above min {self.min}")
        return self


class Analyte(_Strict):
    """An analyte key and its canonical UCUM unit (the unit of facts.yaml where it is a fact)."""

    key: str
    unit: str
    description: str
    molar_mass: str | None = None
    plausible: Plausible


class LabCode(_Strict):
    """A LOINC code that measures an analyte."""

    code: str
    key: str
    display: str
    source: SourceRef


class LabsFile(_DataFile):
    analytes: tuple[Analyte, ...]
    codes: tuple[LabCode, ...]

    @model_validator(mode="after")
    def _codes_name_analytes(self) -> LabsFile:
        keys = {a.key for a in self.analytes}
        for c in self.codes:
            if c.key not in keys:
                raise ValueError(f"code {c.code} names unknown analyte {c.key!r}")
        _unique((c.code for c in self.codes), "LOINC code")
        _unique((a.key for a in self.analytes), "analyte key")
        return self


# -- observations.yaml -------------------------------------------------------------------------


class ObservationCode(_Strict):
    """What an Observation.code means."""

    system: SystemKey
    code: str
    kind: ObservationKind
    key: str | None = None
    locus: str | None = None
    display: str
    source: SourceRef

    @model_validator(mode="after")
    def _finding_has_key(self) -> ObservationCode:
        if (self.kind == "finding") != (self.key is not None):
            raise ValueError("key is required for kind 'finding' and only for it")
        return self


class Answer(_Strict):
    """What a coded Observation value means: a disease status, a result, a stage or a score."""

    system: SystemKey
    code: str
    status: DiseaseStatus | None = None
    result: FindingValue | None = None
    stage: Literal["IV", "unresectable"] | None = None
    score: int | None = Field(default=None, ge=0, le=100)
    display: str
    source: SourceRef

    @model_validator(mode="after")
    def _exactly_one_meaning(self) -> Answer:
        given = [x for x in (self.status, self.result, self.stage, self.score) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of status, result, stage, score")
        return self


class CodeRef(_Strict):
    system: SystemKey
    code: str


class VariantComponents(_Strict):
    gene_studied: CodeRef
    amino_acid_change: CodeRef


class Gene(_Strict):
    """A gene whose variant assessment yields a finding (BRAF -> braf_v600)."""

    symbol: str
    hgnc: str
    finding: str
    hotspot: str
    source: SourceRef


class TextFinding(_Strict):
    key: str
    all_of: tuple[str, ...]


class ObservationsFile(_DataFile):
    observations: tuple[ObservationCode, ...]
    answers: tuple[Answer, ...]
    result_words: dict[FindingValue, tuple[str, ...]]
    result_exact: dict[FindingValue, tuple[str, ...]] = Field(default_factory=dict)
    stage_iv_pattern: str
    variant_components: VariantComponents
    genes: tuple[Gene, ...]
    text_findings: tuple[TextFinding, ...] = ()

    @model_validator(mode="after")
    def _unique_codes(self) -> ObservationsFile:
        _unique((f"{o.system}|{o.code}" for o in self.observations), "observation code")
        _unique((f"{a.system}|{a.code}" for a in self.answers), "answer code")
        _check_regex(self.stage_iv_pattern, "stage_iv_pattern")
        return self


# -- diagnoses.yaml ----------------------------------------------------------------------------


class Concept(_Strict):
    """An actnav disease (or state) concept; ``parents`` make the hierarchy."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    parents: tuple[str, ...] = ()
    kind: Literal["disease", "state"] = "disease"


class CodeMap(_Strict):
    """A code (ICD-10-CM by prefix; SNOMED CT, ICD-O-3, local exactly) -> concepts."""

    system: Literal["icd10cm", "snomed", "icdo3", "actnav"]
    code: str
    concepts: tuple[str, ...]
    in_relapse: bool = False
    display: str
    source: SourceRef


class Combination(_Strict):
    """A disease concept plus an ICD-10 site prefix on the same Condition adds concepts."""

    requires: str
    site_prefixes: tuple[str, ...]
    concepts: tuple[str, ...]
    source: SourceRef


class TextPattern(_Strict):
    """A regular expression on lower-case text and the concepts it names.

    ``refines``: when given, the pattern is also read on a Condition whose codes the tables know,
    adding its concepts (never removing any) when the coded concepts include one of these
    (``"*"``: any coded Condition). That is how a primary CNS lymphoma coded only as DLBCL
    (C83.39 + 9680/3) still becomes ``primary_cns_lymphoma`` from its text.
    """

    pattern: str
    concepts: tuple[str, ...]
    refines: tuple[str, ...] = ()


class Negation(_Strict):
    """Cues that make a text mention not count (NegEx-style, per clause).

    ``clause_break`` splits the text into clauses; ``before`` is searched in the part of the
    clause before the mention, ``after`` in the part after it. Uncertainty ("suspected",
    "rule out") counts as negation: a concept is added only when the text asserts it.
    """

    clause_break: str
    before: str
    after: str


class DiagnosesFile(_DataFile):
    concepts: tuple[Concept, ...]
    maps: tuple[CodeMap, ...]
    combinations: tuple[Combination, ...] = ()
    text_diseases: tuple[TextPattern, ...] = ()
    text_states: tuple[TextPattern, ...] = ()
    negation: Negation | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DiagnosesFile:
        ids = {c.id for c in self.concepts}
        _unique((c.id for c in self.concepts), "concept id")
        for c in self.concepts:
            for p in c.parents:
                if p not in ids:
                    raise ValueError(f"concept {c.id!r}: unknown parent {p!r}")
        parents = {c.id: c.parents for c in self.concepts}
        for c in self.concepts:
            _check_acyclic(c.id, parents)
        named: list[tuple[str, Sequence[str]]] = [(f"{m.system} {m.code}", m.concepts) for m in self.maps]
        named += [(f"combination {x.requires}", (x.requires, *x.concepts)) for x in self.combinations]
        named += [(f"text {t.pattern!r}", t.concepts) for t in (*self.text_diseases, *self.text_states)]
        named += [
            (f"text {t.pattern!r} refines", [r for r in t.refines if r != "*"])
            for t in (*self.text_diseases, *self.text_states)
        ]
        for where, concepts in named:
            for cid in concepts:
                if cid not in ids:
                    raise ValueError(f"{where}: unknown concept {cid!r}")
        _unique((f"{m.system}|{_norm_code(m.system, m.code)}" for m in self.maps), "code")
        for t in (*self.text_diseases, *self.text_states):
            _check_regex(t.pattern, "text pattern")
        if self.negation is not None:
            for name in ("clause_break", "before", "after"):
                _check_regex(getattr(self.negation, name), f"negation {name}")
        return self


# -- drugs.yaml --------------------------------------------------------------------------------


class Agent(_Strict):
    """A drug or cell therapy by lower-case INN."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9 \-]*$")
    classes: tuple[DrugClass, ...]
    anticancer: bool = True
    rxnorm: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    source: SourceRef


class Product(_Strict):
    """An RxNorm product (clinical drug) code -> one agent."""

    rxnorm: str
    agent: str
    display: str
    source: SourceRef


class Regimen(_Strict):
    """A regimen acronym and its component agents.

    ``spellings`` match case-insensitively as whole words; a separator written in a spelling
    (``-``, space, ``+``, ``/``) stands for any run of separators in the text, so ``r-chop``
    matches "R-CHOP", "R CHOP", "R/CHOP" and "R + CHOP" (list ``rchop`` too for the spelling
    without one). ``exact`` spellings match only as written (case included): they are also
    ordinary words in lower case ("MATRix" / matrix, "RICE" / rice, "VenO" / veno-).
    """

    name: str
    spellings: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    agents: tuple[str, ...] = Field(min_length=2)
    source: SourceRef

    @model_validator(mode="after")
    def _has_spellings(self) -> Regimen:
        if not self.spellings and not self.exact:
            raise ValueError(f"regimen {self.name}: give spellings or exact spellings")
        return self


class ProcedureCode(_Strict):
    """A Procedure.code that is a cell therapy or a transplant."""

    system: SystemKey
    code: str
    kind: Literal["car_t", "hsct"]
    transplant: TransplantType | None = None
    display: str
    source: SourceRef


class ProcedureText(_Strict):
    pattern: str
    kind: Literal["car_t", "hsct"]
    transplant: TransplantType | None = None


class DrugsFile(_DataFile):
    agents: tuple[Agent, ...]
    products: tuple[Product, ...] = ()
    regimens: tuple[Regimen, ...] = ()
    procedures: tuple[ProcedureCode, ...] = ()
    procedure_text: tuple[ProcedureText, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> DrugsFile:
        names = {a.name for a in self.agents}
        _unique((a.name for a in self.agents), "agent name")
        spellings = [a.name for a in self.agents] + [s.lower() for a in self.agents for s in a.synonyms]
        _unique(spellings, "agent or synonym name")
        _unique((r.name for r in self.regimens), "regimen name")
        # A regimen spelling must name one regimen, and never read as an agent's name.
        compact_agents = {_compact(s) for s in spellings}
        owner: dict[str, str] = {}
        for r in self.regimens:
            for written in (*r.spellings, *r.exact):
                key = _compact(written)
                if not key:
                    raise ValueError(f"regimen {r.name}: empty spelling {written!r}")
                if owner.get(key, r.name) != r.name:
                    raise ValueError(f"duplicate regimen spelling {written!r} ({owner[key]} and {r.name})")
                if key in compact_agents:
                    raise ValueError(f"regimen {r.name}: spelling {written!r} is also an agent name")
                owner[key] = r.name
        _unique((c for a in self.agents for c in a.rxnorm), "RxNorm ingredient code")
        for p in self.products:
            if p.agent not in names:
                raise ValueError(f"product {p.rxnorm}: unknown agent {p.agent!r}")
        for r in self.regimens:
            for agent in r.agents:
                if agent not in names:
                    raise ValueError(f"regimen {r.name}: unknown agent {agent!r}")
        for t in self.procedure_text:
            _check_regex(t.pattern, "procedure text pattern")
        return self


# -- hla.yaml ----------------------------------------------------------------------------------


class PGroup(_Strict):
    p_group: str = Field(pattern=r"^[A-Z0-9]+\*\d{2,3}:\d{2,3}P$")
    members: tuple[str, ...]
    source: SourceRef


class HlaFile(_DataFile):
    locus: str
    groups: tuple[PGroup, ...]

    @model_validator(mode="after")
    def _members_unique(self) -> HlaFile:
        _unique((m for g in self.groups for m in g.members), "member allele")
        return self


# -- validation helpers ------------------------------------------------------------------------


def _unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate {what} {v!r}")
        seen.add(v)


#: Characters that separate the parts of a regimen acronym as people write it (R-CHOP, Ven+O,
#: Dara/Pd, "R CHOP", en and em dashes).
_REGIMEN_SEPARATORS = r"\s\-+/&\u2010-\u2015"


def _compact(spelling: str) -> str:
    """A regimen spelling without separators and case: ``"Dara-Pd"`` -> ``"darapd"``."""
    return re.sub(rf"[{_REGIMEN_SEPARATORS}]+", "", spelling).casefold()


def _check_regex(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid {what} {pattern!r}: {exc}") from exc


def _check_acyclic(start: str, parents: dict[str, tuple[str, ...]]) -> None:
    stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
    while stack:
        node, path = stack.pop()
        for p in parents.get(node, ()):
            if p in path:
                raise ValueError(f"concept cycle: {' -> '.join((*path, p))}")
            stack.append((p, (*path, p)))


def _norm_code(system: str, code: str) -> str:
    """ICD-10 codes compare without dots and in upper case; others as written, trimmed."""
    code = code.strip()
    if system in ("icd10cm", "icd10"):
        return code.replace(".", "").upper()
    return code


# -- loaders -----------------------------------------------------------------------------------


def _load(model: type[M], name: str) -> M:
    from actnav.knowledge.loader import load_data

    return load_data(model, f"terminology/{name}")


@cache
def code_systems() -> CodeSystemsFile:
    """``code-systems.yaml``, validated. Raises DataFileError when invalid."""
    return _load(CodeSystemsFile, "code-systems.yaml")


@cache
def units_table() -> UnitsFile:
    """``units.yaml``, validated. Raises DataFileError when invalid."""
    return _load(UnitsFile, "units.yaml")


@cache
def labs() -> LabsFile:
    """``labs.yaml``, validated and cross-checked against ``units.yaml``.

    Raises:
        DataFileError: invalid file, a canonical unit not in units.yaml, or an unknown molar mass.
    """
    table = _load(LabsFile, "labs.yaml")
    units = units_table()
    known_units = {u.ucum for u in units.units}
    masses = {m.analyte for m in units.molar_masses}
    for a in table.analytes:
        if a.unit not in known_units:
            raise DataFileError(
                f"unit {a.unit!r} is not in units.yaml", where=f"terminology/labs.yaml: {a.key}: unit"
            )
        if a.molar_mass is not None and a.molar_mass not in masses:
            raise DataFileError(
                f"no molar mass {a.molar_mass!r} in units.yaml",
                where=f"terminology/labs.yaml: {a.key}: molar_mass",
            )
    return table


@cache
def observations() -> ObservationsFile:
    """``observations.yaml``, validated. Raises DataFileError when invalid."""
    return _load(ObservationsFile, "observations.yaml")


@cache
def diagnoses() -> DiagnosesFile:
    """``diagnoses.yaml``, validated (hierarchy acyclic, every concept named exists)."""
    return _load(DiagnosesFile, "diagnoses.yaml")


@cache
def drugs() -> DrugsFile:
    """``drugs.yaml``, validated (classes from the fixed vocabulary, names unambiguous)."""
    return _load(DrugsFile, "drugs.yaml")


@cache
def hla_table() -> HlaFile:
    """``hla.yaml``, validated. Raises DataFileError when invalid."""
    return _load(HlaFile, "hla.yaml")


def load_all() -> None:
    """Load and cross-check every terminology file (tests and ``actnav check`` call this).

    Raises:
        DataFileError: the first invalid file.
    """
    code_systems()
    labs()
    observations()
    diagnoses()
    drugs()
    hla_table()
    _indexes()


# -- indexes (built once, from the validated files) --------------------------------------------


@dataclass(frozen=True)
class _Indexes:
    system_by_uri: dict[str, str]
    system_prefixes: tuple[str, ...]
    system_names: tuple[str, ...]
    lab_by_code: dict[str, LabCode]
    analyte_by_key: dict[str, Analyte]
    observation_by_code: dict[tuple[str, str], ObservationCode]
    answer_by_code: dict[tuple[str, str], Answer]
    icd_prefixes: dict[str, CodeMap]
    exact_maps: dict[tuple[str, str], CodeMap]
    concept_by_id: dict[str, Concept]
    lineage: dict[str, tuple[str, ...]]
    text_diseases: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]
    text_states: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]
    refinements: tuple[tuple[re.Pattern[str], tuple[str, ...], frozenset[str]], ...]
    negation: _NegationIndex | None
    agent_by_name: dict[str, Agent]
    agents_by_rxnorm: dict[str, tuple[str, ...]]
    agents_by_spelling: dict[str, tuple[str, ...]]
    spelling_regex: re.Pattern[str]
    regimen_by_compact: dict[str, Regimen]
    regimen_regex: re.Pattern[str] | None
    regimen_exact_regex: re.Pattern[str] | None
    procedure_by_code: dict[tuple[str, str], ProcedureCode]
    procedure_text: tuple[tuple[re.Pattern[str], ProcedureText], ...]
    p_group_by_member: dict[str, str]
    p_groups: frozenset[str]
    stage_iv: re.Pattern[str]


@dataclass(frozen=True)
class _NegationIndex:
    clause_break: re.Pattern[str]
    before: re.Pattern[str]
    after: re.Pattern[str]


def _regimen_regex(spellings: Iterable[str], *, ignore_case: bool) -> re.Pattern[str] | None:
    """One alternation of regimen spellings, longest first, each a whole word.

    A separator in a spelling matches one or more separators in the text. The end may be
    followed by a digit (R-CHOP21, mFOLFOX6) but not by a letter or by "-letter" (so "veno-"
    in veno-occlusive is not Ven+O).
    """
    sep = f"[{_REGIMEN_SEPARATORS}]+"
    parts = []
    for written in sorted(set(spellings), key=lambda w: (-len(_compact(w)), w)):
        tokens = [t for t in re.split(f"[{_REGIMEN_SEPARATORS}]+", written.strip()) if t]
        parts.append(sep.join(re.escape(t) for t in tokens))
    if not parts:
        return None
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile(rf"(?<![A-Za-z0-9])(?:{'|'.join(parts)})(?![A-Za-z])(?!-[A-Za-z])", flags)


@cache
def _indexes() -> _Indexes:
    systems = code_systems()
    by_uri: dict[str, str] = {}
    for s in systems.systems:
        for uri in (s.uri, *s.aliases):
            by_uri[uri.rstrip("/")] = s.key
    names = tuple(s.name for s in systems.systems) + tuple(p.name for p in systems.prefixes)

    dx = diagnoses()
    lineage = {c.id: _lineage(c.id, {k.id: k.parents for k in dx.concepts}) for c in dx.concepts}
    icd = {_norm_code("icd10cm", m.code): m for m in dx.maps if m.system == "icd10cm"}
    exact: dict[tuple[str, str], CodeMap] = {
        (m.system, _norm_code(m.system, m.code)): m for m in dx.maps if m.system != "icd10cm"
    }

    rx = drugs()
    by_name = {a.name: a for a in rx.agents}
    by_rxnorm: dict[str, tuple[str, ...]] = {c: (a.name,) for a in rx.agents for c in a.rxnorm}
    by_rxnorm.update({p.rxnorm: (p.agent,) for p in rx.products})
    spelling: dict[str, tuple[str, ...]] = {}
    for a in rx.agents:
        for written in (a.name, *a.synonyms):
            spelling[_normalise_text(written)] = (a.name,)
    # Longest spelling first, so "rituximab-abbs" wins over "rituximab".
    alternation = "|".join(re.escape(s) for s in sorted(spelling, key=len, reverse=True))
    spelling_regex = re.compile(rf"(?<![a-z0-9])(?:{alternation})(?![a-z0-9])")
    regimen_by_compact = {_compact(w): r for r in rx.regimens for w in (*r.spellings, *r.exact)}
    regimen_regex = _regimen_regex((w for r in rx.regimens for w in r.spellings), ignore_case=True)
    regimen_exact = _regimen_regex((w for r in rx.regimens for w in r.exact), ignore_case=False)
    negation = (
        _NegationIndex(
            clause_break=re.compile(dx.negation.clause_break),
            before=re.compile(dx.negation.before),
            after=re.compile(dx.negation.after),
        )
        if dx.negation is not None
        else None
    )

    obs = observations()
    hla = hla_table()
    return _Indexes(
        system_by_uri=by_uri,
        system_prefixes=tuple(p.prefix for p in systems.prefixes),
        system_names=names,
        lab_by_code={c.code: c for c in labs().codes},
        analyte_by_key={a.key: a for a in labs().analytes},
        observation_by_code={(o.system, o.code): o for o in obs.observations},
        answer_by_code={(a.system, a.code): a for a in obs.answers},
        icd_prefixes=icd,
        exact_maps=exact,
        concept_by_id={c.id: c for c in dx.concepts},
        lineage=lineage,
        text_diseases=tuple((re.compile(t.pattern), t.concepts) for t in dx.text_diseases),
        text_states=tuple((re.compile(t.pattern), t.concepts) for t in dx.text_states),
        refinements=tuple(
            (re.compile(t.pattern), t.concepts, frozenset(t.refines))
            for t in (*dx.text_diseases, *dx.text_states)
            if t.refines
        ),
        negation=negation,
        agent_by_name=by_name,
        agents_by_rxnorm=by_rxnorm,
        agents_by_spelling=spelling,
        spelling_regex=spelling_regex,
        regimen_by_compact=regimen_by_compact,
        regimen_regex=regimen_regex,
        regimen_exact_regex=regimen_exact,
        procedure_by_code={(p.system, p.code): p for p in rx.procedures},
        procedure_text=tuple((re.compile(t.pattern), t) for t in rx.procedure_text),
        p_group_by_member={m: g.p_group for g in hla.groups for m in g.members},
        p_groups=frozenset(g.p_group for g in hla.groups),
        stage_iv=re.compile(obs.stage_iv_pattern),
    )


def _lineage(concept: str, parents: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The concept followed by its ancestors, nearest first (breadth-first, no repeats)."""
    out = [concept]
    queue = list(parents.get(concept, ()))
    while queue:
        node = queue.pop(0)
        if node not in out:
            out.append(node)
            queue.extend(parents.get(node, ()))
    return tuple(out)


def _normalise_text(text: str) -> str:
    # Synthea displays contain zero-width spaces ("Hemoglobin [Mass/\u200bvolume]").
    text = text.replace("\u200b", "").replace("_", " ").lower()
    return re.sub(r"\s+", " ", text).strip()


# -- code systems ------------------------------------------------------------------------------


def system_key(uri: str) -> str | None:
    """The key of a known code system (``"loinc"``), ``"hl7"`` for any THO system, else None.

    Args:
        uri: ``Coding.system`` as written.
    """
    ix = _indexes()
    uri = uri.strip().rstrip("/")
    found = ix.system_by_uri.get(uri)
    if found is not None:
        return found
    if any(uri.startswith(p.rstrip("/")) for p in ix.system_prefixes):
        return "hl7"
    return None


def known_system_names() -> tuple[str, ...]:
    """Names of the accepted code systems, for error messages."""
    return _indexes().system_names


# -- labs and observations ---------------------------------------------------------------------


def lab_code(code: str) -> LabCode | None:
    """The analyte a LOINC code measures, or None when actnav does not read it."""
    return _indexes().lab_by_code.get(code.strip())


def analyte(key: str) -> Analyte:
    """The analyte definition for a key (raises KeyError for an unknown key)."""
    return _indexes().analyte_by_key[key]


def implausible(key: str, value: float) -> str | None:
    """Why ``value`` (in the analyte's canonical unit) cannot be a real result, or None.

    Args:
        key: the analyte key (``anc``).
        value: the value converted to the analyte's canonical unit.

    Returns:
        None when the value is within the plausible range of labs.yaml; otherwise a sentence
        naming the value and the range (``"-5 10*9/L is outside the plausible range for anc
        (0 to 1000 10*9/L)"``).
    """
    a = analyte(key)
    bound = a.plausible
    unit = "" if a.unit == "{score}" else f" {a.unit}"
    if not math.isfinite(value):
        return f"the value is not a finite number (plausible range for {key}: {bound.min:g} to {bound.max:g}{unit})"
    if not bound.min <= value <= bound.max:
        return (
            f"{value:g}{unit} is outside the plausible range for {key} ({bound.min:g} to {bound.max:g}{unit})"
        )
    if bound.integer and value != int(value):
        return f"{value:g} is not a whole number ({key} is scored {bound.min:g} to {bound.max:g})"
    return None


def observation_code(system: str, code: str) -> ObservationCode | None:
    """What an Observation.code (system key, code) means, if actnav reads it."""
    return _indexes().observation_by_code.get((system, code.strip()))


def answer(system: str, code: str) -> Answer | None:
    """What a coded Observation value (system key, code) means, if known."""
    return _indexes().answer_by_code.get((system, code.strip()))


def result_from_text(text: str) -> FindingValue | None:
    """Positive / negative / indeterminate from free text, or None when it says none of them.

    Whole values like ``"pos"`` or ``"no"`` are read exactly; words and phrases are searched
    in the order indeterminate, negative, positive, so "not detected" is negative.
    """
    obs = observations()
    norm = _normalise_text(text).rstrip(".")
    for value, words in obs.result_exact.items():
        if norm in words:
            return value
    for value in ("indeterminate", "negative", "positive"):
        for word in obs.result_words.get(value, ()):
            if re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", norm):
                return value
    return None


def is_stage_iv(text: str) -> bool:
    """True when a stage written as text is stage IV (``"IV"``, ``"Stage IVB"``, ``"4"``)."""
    return bool(_indexes().stage_iv.match(_normalise_text(text)))


def text_finding(text: str) -> str | None:
    """The finding key an Observation's code text names (``"BRAF V600E"`` -> braf_v600)."""
    norm = _normalise_text(text)
    for rule in observations().text_findings:
        if all(word in norm for word in rule.all_of):
            return rule.key
    return None


def gene(hgnc_or_symbol: str) -> Gene | None:
    """A gene of observations.yaml by HGNC id (``HGNC:1097``) or symbol (``BRAF``)."""
    wanted = hgnc_or_symbol.strip().upper()
    for g in observations().genes:
        if wanted in (g.hgnc.upper(), g.symbol.upper()):
            return g
    return None


# -- diagnoses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionMapping:
    """What a Condition's codes mean.

    Attributes:
        concepts: concept ids with all ancestors, most specific first.
        in_relapse: a code says "in relapse".
        by_text: True when the concepts came from text, not from a code in the tables.
        refined: concepts the text added to the coded ones (``primary_cns_lymphoma`` from
            "Primary CNS lymphoma" on a C83.39 code), without their ancestors.
        negated: concepts the text mentions only negated or as uncertain ("no CNS
            involvement", "rule out PCNSL") and that the Condition therefore does not carry.
    """

    concepts: tuple[str, ...]
    in_relapse: bool = False
    by_text: bool = False
    refined: tuple[str, ...] = ()
    negated: tuple[str, ...] = ()


def map_condition(
    codings: Sequence[tuple[str | None, Coding]], texts: Sequence[str] = ()
) -> ConditionMapping:
    """Map a Condition's codings (and its text) to actnav concepts.

    Args:
        codings: ``(system key or None, coding)`` pairs; the key comes from :func:`system_key`.
        texts: ``CodeableConcept.text`` and other free text describing the condition.

    Returns:
        The concepts with ancestors. Codes of known systems decide; when no coding is in the
        tables the text decides (see diagnoses.yaml). When a code is known, the refining text
        patterns (``refines``) are still read on the text and every coding's display and may
        add concepts; a mention that is negated or uncertain adds nothing.
    """
    ix = _indexes()
    direct: list[str] = []
    in_relapse = False
    known = False
    icd_codes: list[str] = []
    for key, coding in codings:
        entry: CodeMap | None = None
        if key in ("icd10cm", "icd10"):
            norm = _norm_code("icd10cm", coding.code)
            icd_codes.append(norm)
            entry = _longest_prefix(norm, ix.icd_prefixes)
        elif key in ("snomed", "icdo3", "actnav"):
            entry = ix.exact_maps.get((key, _norm_code(key, coding.code)))
            if entry is None and key == "actnav" and coding.code in ix.concept_by_id:
                known = True
                direct.append(coding.code)
        if entry is not None:
            known = True
            direct.extend(entry.concepts)
            in_relapse = in_relapse or entry.in_relapse
    written = [c.display for _, c in codings if c.display] + [t for t in texts if t]
    by_text = False
    negated: list[str] = []
    refined: list[str] = []
    if not known:
        for text in written:
            found, denied = _text_concepts(text)
            negated.extend(denied)
            if found:
                by_text = True
                direct.extend(found)
    else:
        coded = set(direct)
        for pattern, concepts, refines in ix.refinements:
            if "*" not in refines and not coded & refines:
                continue
            mentions = [_mention(pattern, _normalise_text(text)) for text in written]
            if "asserted" in mentions:
                refined.extend(c for c in concepts if c not in direct and c not in refined)
            elif "negated" in mentions:
                negated.extend(concepts)
        direct.extend(refined)
    concepts = _finish(direct, icd_codes)
    not_carried = tuple(dict.fromkeys(c for c in negated if c not in concepts))
    return ConditionMapping(concepts, in_relapse, by_text, tuple(refined), not_carried)


def _longest_prefix(code: str, table: dict[str, CodeMap]) -> CodeMap | None:
    for end in range(len(code), 0, -1):
        hit = table.get(code[:end])
        if hit is not None:
            return hit
    return None


def _mention(pattern: re.Pattern[str], norm: str) -> Literal["asserted", "negated"] | None:
    """Whether normalised text asserts what ``pattern`` names, mentions it only negated, or neither."""
    seen_negated = False
    for m in pattern.finditer(norm):
        if _is_negated(norm, m.start(), m.end()):
            seen_negated = True
        else:
            return "asserted"
    return "negated" if seen_negated else None


def _is_negated(norm: str, start: int, end: int) -> bool:
    """A negation or uncertainty cue in the same clause, just before or just after the mention."""
    neg = _indexes().negation
    if neg is None:
        return False
    before = norm[:start]
    cut = 0
    for b in neg.clause_break.finditer(before):
        cut = b.end()
    after = norm[end:]
    stop = neg.clause_break.search(after)
    return bool(neg.before.search(before[cut:]) or neg.after.search(after[: stop.start()] if stop else after))


def _text_concepts(text: str) -> tuple[list[str], list[str]]:
    """Concepts a Condition's text names (first disease pattern, every state), and those negated."""
    ix = _indexes()
    norm = _normalise_text(text)
    found: list[str] = []
    negated: list[str] = []
    for pattern, concepts in ix.text_diseases:
        if not concepts:  # "suspected", "history of": recognised, and not a disease
            if pattern.search(norm):
                break
            continue
        mention = _mention(pattern, norm)
        if mention == "asserted":
            found.extend(concepts)
            break
        if mention == "negated":
            negated.extend(concepts)
    for pattern, concepts in ix.text_states:
        mention = _mention(pattern, norm)
        if mention == "asserted":
            found.extend(concepts)
        elif mention == "negated":
            negated.extend(concepts)
    return found, negated


def _finish(direct: Sequence[str], icd_codes: Sequence[str]) -> tuple[str, ...]:
    ix = _indexes()
    expanded = _expand(direct)
    for combo in diagnoses().combinations:
        if combo.requires in expanded and any(
            c.startswith(p) for c in icd_codes for p in combo.site_prefixes
        ):
            direct = [*direct, *combo.concepts]
    # other_malignancy only stands when nothing more specific names the disease.
    specific = [
        c for c in direct
        if ix.concept_by_id[c].kind == "disease" and c != "other_malignancy"
    ]  # fmt: skip
    if specific:
        direct = [c for c in direct if c != "other_malignancy"]
    return _expand(direct)


def _expand(direct: Sequence[str]) -> tuple[str, ...]:
    """The concepts and their ancestors, most specific first (leaves, then their lineages)."""
    ix = _indexes()
    unique = list(dict.fromkeys(direct))
    covered = {a for c in unique for a in ix.lineage[c][1:]}
    leaves = [c for c in unique if c not in covered]
    out: list[str] = []
    for concept in leaves:
        for c in ix.lineage[concept]:
            if c not in out:
                out.append(c)
    return tuple(out)


def concept_lineage(concept: str) -> tuple[str, ...]:
    """A concept and its ancestors (raises KeyError for an unknown concept)."""
    return _indexes().lineage[concept]


# -- drugs and procedures ----------------------------------------------------------------------


@dataclass(frozen=True)
class DrugMatch:
    """Agents recognised in a medication, their classes, and whether any is anticancer.

    ``anticancer`` is None when no agent was recognised; ``regimens`` names the regimens of
    drugs.yaml read in the text (``("R-CHOP",)``), whose agents are among ``agents``.
    """

    agents: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    anticancer: bool | None = None
    regimens: tuple[str, ...] = ()


def match_drug(rxnorm_codes: Sequence[str], texts: Sequence[str]) -> DrugMatch:
    """Recognise agents by RxNorm code, else by regimen acronym and name in the given texts.

    Args:
        rxnorm_codes: RxNorm codes of the medication (ingredient or product).
        texts: displays and text of the medication, the procedure, or a product name.

    Regimen acronyms (``R-CHOP``, ``Dara-Pd``, ``Ven+O``) expand into their agents; the
    text a regimen covers is not read again for agent names.
    """
    ix = _indexes()
    found: list[str] = []
    regimens: list[str] = []
    for code in rxnorm_codes:
        found.extend(ix.agents_by_rxnorm.get(code.strip(), ()))
    if not found:
        for text in texts:
            rest = _read_regimens(re.sub(r"\s+", " ", text.replace("\u200b", "")).strip(), regimens, found)
            for spelling in ix.spelling_regex.findall(_normalise_text(rest)):
                found.extend(ix.agents_by_spelling[spelling])
    match = _drug_match(found)
    return DrugMatch(match.agents, match.classes, match.anticancer, tuple(dict.fromkeys(regimens)))


@dataclass(frozen=True)
class DrugMention:
    """An agent or regimen named in free text: ``text[start:end]`` names ``agents``.

    ``regimen`` is the regimen's name (``"R-CHOP"``) when the words are a regimen acronym, else
    None and ``agents`` holds the one agent.
    """

    start: int
    end: int
    agents: tuple[str, ...]
    regimen: str | None = None


def drug_mentions(text: str) -> tuple[DrugMention, ...]:
    """Every agent and regimen of drugs.yaml named in ``text``, with character offsets, in order.

    The same matching as :func:`match_drug` (regimens first, longest first, never overlapping;
    then agent names and synonyms as whole words, case-insensitive) but keeping where each
    mention is, for reading clinical notes.
    """
    ix = _indexes()
    found: list[tuple[int, int]] = []
    for regex in (ix.regimen_exact_regex, ix.regimen_regex):
        if regex is not None:
            found += [(m.start(), m.end()) for m in regex.finditer(text)]
    out: list[DrugMention] = []
    for start, end in sorted(found, key=lambda se: (se[0] - se[1], se[0])):
        if not any(start < m.end and m.start < end for m in out):
            regimen = ix.regimen_by_compact[_compact(text[start:end])]
            out.append(DrugMention(start, end, regimen.agents, regimen.name))
    # Lower case of the same length, so offsets stay those of the text.
    lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text).replace("_", " ")
    for m in ix.spelling_regex.finditer(lowered):
        if not any(m.start() < r.end and r.start < m.end() for r in out):
            out.append(DrugMention(m.start(), m.end(), ix.agents_by_spelling[m.group(0)]))
    return tuple(sorted(out, key=lambda m: m.start))


def _read_regimens(text: str, regimens: list[str], agents: list[str]) -> str:
    """Add the regimens named in ``text`` (and their agents); return the text with them blanked.

    Matches of the case-insensitive and the exact spellings are taken longest first, never
    overlapping, so "R-EPOCH" is R-EPOCH and not the EPOCH inside it.
    """
    ix = _indexes()
    found: list[tuple[int, int]] = []
    for regex in (ix.regimen_exact_regex, ix.regimen_regex):
        if regex is not None:
            found += [(m.start(), m.end()) for m in regex.finditer(text)]
    spans: list[tuple[int, int]] = []
    for start, end in sorted(found, key=lambda se: (se[0] - se[1], se[0])):
        if not any(start < e and s < end for s, e in spans):
            spans.append((start, end))
    for start, end in sorted(spans):
        regimen = ix.regimen_by_compact[_compact(text[start:end])]
        regimens.append(regimen.name)
        agents.extend(regimen.agents)
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def _drug_match(names: Iterable[str]) -> DrugMatch:
    ix = _indexes()
    agents = tuple(dict.fromkeys(names))
    if not agents:
        return DrugMatch()
    defs = [ix.agent_by_name[a] for a in agents]
    classes = {c for d in defs for c in d.classes}
    return DrugMatch(
        agents=agents,
        classes=tuple(c for c in DRUG_CLASSES if c in classes),
        anticancer=any(d.anticancer for d in defs),
    )


def drug_classes(agents: Iterable[str]) -> tuple[str, ...]:
    """The classes of the named agents, in vocabulary order."""
    return _drug_match(agents).classes


@dataclass(frozen=True)
class ProcedureMatch:
    kind: Literal["car_t", "hsct"]
    transplant: TransplantType | None = None


def match_procedure(
    codings: Sequence[tuple[str | None, Coding]], texts: Sequence[str]
) -> ProcedureMatch | None:
    """Whether a Procedure is a CAR-T infusion or an HSCT (and which type), else None.

    The code says what it is; the words of the display/text say the transplant type, because no
    SNOMED CT code specific to autologous or allogeneic HSCT is in the tables.
    """
    ix = _indexes()
    by_code: ProcedureCode | None = None
    for key, coding in codings:
        if key is not None:
            by_code = by_code or ix.procedure_by_code.get((key, coding.code.strip()))
    written = [_normalise_text(t) for t in (*(c.display for _, c in codings if c.display), *texts) if t]
    by_text: ProcedureText | None = None
    for pattern, rule in ix.procedure_text:
        if any(pattern.search(t) for t in written):
            by_text = rule
            break
    if by_code is None and by_text is None:
        return None
    kind = by_code.kind if by_code is not None else by_text.kind  # type: ignore[union-attr]
    transplant: TransplantType | None = None
    if kind == "hsct":
        transplant = "unknown"
        if by_text is not None and by_text.kind == "hsct" and by_text.transplant not in (None, "unknown"):
            transplant = by_text.transplant
        elif by_code is not None and by_code.transplant is not None:
            transplant = by_code.transplant
    return ProcedureMatch(kind, transplant)


# -- HLA ---------------------------------------------------------------------------------------

_ALLELE = re.compile(
    r"^(?:HLA-)?(?P<locus>[A-Z][A-Z0-9]*)\*(?P<fields>\d{2,4}(?::\d{2,3}){0,3})(?P<suffix>[NLSCAQPG]?)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class HlaCall:
    """One allele as actnav reads it.

    Attributes:
        locus: ``"A"``, ``"B"``... (None when the text is not an allele name).
        fields: number of fields given (1 = low resolution).
        p_group: the P group when the allele maps to one in ``hla.yaml``.
        known_absent: the allele is in none of the packaged P groups.
        note: why the P group is unknown or absent, for the report.
    """

    locus: str | None
    fields: int
    p_group: str | None = None
    known_absent: bool = False
    note: str = ""


def hla_p_group(written: str) -> HlaCall:
    """Map one allele name to its HLA-A*02 P group (rules in ``hla.yaml``).

    Args:
        written: ``HLA-A*02:01:01:01``, ``A*02:01``, ``A*02:01P``, ``A*02:01:01G``, ``A*02``.

    Returns:
        The call; ``locus`` is None when ``written`` is not an allele name.
    """
    ix = _indexes()
    text = written.strip()
    m = _ALLELE.match(text)
    if m is None:
        return HlaCall(locus=None, fields=0, note=f"not an HLA allele name: {text!r}")
    locus = m["locus"].upper()
    parts = m["fields"].split(":")
    if len(parts) == 1 and len(parts[0]) == 4:
        parts = [parts[0][:2], parts[0][2:]]  # legacy "A*0201" spelling of A*02:01
    suffix = m["suffix"].upper()
    fields = len(parts)
    table_locus = hla_table().locus
    if locus != table_locus or parts[0] != "02":
        return HlaCall(locus, fields, known_absent=True, note=f"not an {table_locus}*02 allele")
    if suffix == "N":
        return HlaCall(locus, fields, known_absent=True, note="null allele (not expressed)")
    if fields == 1:
        return HlaCall(locus, fields, note="one-field typing: high-resolution typing needed")
    two = f"{locus}*{parts[0]}:{parts[1]}"
    if suffix == "P":
        group = f"{two}P"
        if group in ix.p_groups:
            return HlaCall(locus, fields, p_group=group)
        return HlaCall(locus, fields, note=f"P group {group} is not in the packaged table")
    group_of = ix.p_group_by_member.get(two)
    if group_of is None:
        return HlaCall(locus, fields, note=f"{two} is not in the packaged P-group table")
    note = "questionable expression (Q)" if suffix == "Q" else ""
    return HlaCall(locus, fields, p_group=group_of, note=note)


# -- ICD-10-CM code table ------------------------------------------------------------------------


@cache
def _icd10cm_table() -> types.ModuleType:
    """The simple-icd-10-cm package, imported here only: version 1.5 reads its table with the
    deprecated ``importlib.resources.read_text``, a DeprecationWarning silenced once, here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm  # type: ignore[import-untyped]

    table: types.ModuleType = simple_icd_10_cm
    return table


def icd10cm_valid(code: str) -> bool:
    """True when ``code`` (dotted, ``"C90.00"``) is a code or category of the ICD-10-CM table of
    simple-icd-10-cm (the one way actnav reads that table)."""
    return bool(_icd10cm_table().is_valid_item(code))


def icd10cm_title(code: str) -> str | None:
    """The ICD-10-CM title of a code or category (simple-icd-10-cm), None when it is not one."""
    if not icd10cm_valid(code):
        return None
    return str(_icd10cm_table().get_description(code))
