"""An optional language model that proposes facts for the sentences the rules left unparsed.

Off by default. A user may point actnav at an OpenAI-compatible chat-completions endpoint (their own
local server: llama.cpp, vLLM, Ollama...) with three environment variables:

* ``ACTNAV_LLM_URL``: the API base, e.g. ``http://127.0.0.1:8080/v1`` (the request goes to
  ``{url}/chat/completions``). Unset: no language model.
* ``ACTNAV_LLM_MODEL``: the model name the server expects (default ``default``).
* ``ACTNAV_LLM_API_KEY``: sent as ``Authorization: Bearer <key>`` when set.

What is sent: only the sentences of :attr:`NoteExtraction.unparsed` (at most
``max_sentences``), each with a short id, and the instructions below. Never the whole note, the
as-of date, a label or a patient id. Runs of digits that look like record or telephone numbers and
e-mail addresses are masked (same length, so offsets stay true) before sending.

What is asked for (``response_format`` ``json_object``)::

    {"facts": [
      {"sentence": "s1",                  # the id of the sentence the fact is read from
       "kind": "lab",                     # a FactKind (age, sex, diagnosis, disease_status, therapy,
                                          #   transplant, performance_status, lab, biomarker, hla,
                                          #   cns_involvement, infection, pregnancy)
       "label": "platelets 85 x10^9/L",   # the fact in a few words
       "quote": "platelets of 85",        # words copied exactly from the sentence
       "concept": "platelets",            # optional actnav key (disease concept, agent or regimen,
                                          #   analyte key, ecog/karnofsky, finding key)
       "value": null,                     # optional value in words (female, relapse, allogeneic,
                                          #   positive, an HLA allele)
       "number": 85, "unit": "10*9/L",    # optional number and its unit
       "detail": null, "date": null,      # optional detail as written; ISO date
       "negated": false, "historical": false, "family": false,
       "hypothetical": false, "uncertain": false}
    ]}

Every proposal is checked before it becomes a :class:`NoteFact` (``origin="language_model"``,
``review="pending"``): the quote must occur verbatim in its sentence (offsets are computed here,
never taken from the model); ``kind`` and the fields must validate; a ``value`` of a kind with a
fixed vocabulary must be one of it; a ``concept`` unknown to actnav's terminology or rules is
dropped (the fact is then shown, not used); a lab number is converted to the analyte's canonical
unit (:func:`actnav.patient.units.to_unit`) and must be plausible, else the fact is dropped. A
timeout, a connection or HTTP error or an answer that is not the JSON asked for becomes a warning;
nothing here raises to the user, and no warning quotes the note or the answer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import httpx
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from actnav.errors import InputError
from actnav.patient.notes.model import FactKind, NoteExtraction, NoteFact, Span

ENV_URL = "ACTNAV_LLM_URL"
ENV_MODEL = "ACTNAV_LLM_MODEL"
ENV_API_KEY = "ACTNAV_LLM_API_KEY"
#: Longest sentence sent (characters); a longer "sentence" is usually a table or a list.
MAX_SENTENCE_CHARS = 1000
#: Most facts read from one answer (a runaway answer is cut here).
MAX_FACTS = 200
#: Largest answer read (bytes).
MAX_ANSWER_BYTES = 1_000_000

#: Values a fact of these kinds may take (NoteFact.value; actnav.patient.models vocabularies).
VALUES: dict[str, frozenset[str]] = {
    "sex": frozenset({"female", "male"}),
    "disease_status": frozenset(
        {"relapse", "refractory", "progression", "stable", "response", "complete_remission"}
    ),
    "transplant": frozenset({"autologous", "allogeneic", "unknown"}),
    "biomarker": frozenset({"positive", "negative", "indeterminate"}),
}

INSTRUCTIONS = """You read sentences from a clinical note about one patient.
For each sentence, list the clinical facts it states, as JSON: {"facts": [...]}.
Each fact is an object with these keys:
- "sentence": the id of the sentence ("s1", ...);
- "kind": one of age, sex, diagnosis, disease_status, therapy, transplant, performance_status, lab,
  biomarker, hla, cns_involvement, infection, pregnancy;
- "label": the fact in a few words;
- "quote": the words that state the fact, copied exactly from the sentence (same spelling and case);
- optional: "concept" (a lower_case_key such as multiple_myeloma, melphalan, platelets, ecog),
  "value" (sex: female/male; disease_status: relapse/refractory/progression/stable/response/
  complete_remission; transplant: autologous/allogeneic/unknown; biomarker: positive/negative/
  indeterminate; hla: the allele), "number", "unit" (UCUM), "detail", "date" (YYYY-MM-DD);
- "negated", "historical", "family" (about anyone but the patient), "hypothetical", "uncertain":
  true or false.
List only facts the sentence states. If a sentence states none, list nothing for it.
Answer with the JSON object only."""

_DIGITS = re.compile(r"\d{7,}")
_PHONE = re.compile(r"(?<!\d)(?:\+?\d{1,3}[ .-])?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MRN = re.compile(r"\b(?:MRN|NHS|record|chart)(?:\s*(?:no\.?|number|#))?\s*[:#]?\s*[A-Z0-9-]{4,}", re.I)


class LanguageModelSettings(BaseModel):
    """Where the language model is and how long to wait for it.

    Attributes:
        url: API base (``http://127.0.0.1:8080/v1``); requests go to ``{url}/chat/completions``.
        model: the model name the server expects.
        api_key: sent as a bearer token when given.
        timeout_s: seconds to wait for an answer (connect and read), 1-600.
        max_sentences: most unparsed sentences sent per note, 1-200.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl
    model: str = Field(default="default", min_length=1, max_length=200)
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=20, gt=0, le=600)
    max_sentences: int = Field(default=20, ge=1, le=200)

    @property
    def endpoint(self) -> str:
        """The chat-completions address."""
        return str(self.url).rstrip("/") + "/chat/completions"


def settings_from_env(environ: Mapping[str, str]) -> LanguageModelSettings | None:
    """The language model settings from ``ACTNAV_LLM_URL``, ``ACTNAV_LLM_MODEL`` and
    ``ACTNAV_LLM_API_KEY``; None (no language model) when ``ACTNAV_LLM_URL`` is unset or empty.

    Raises:
        InputError: ``ACTNAV_LLM_URL`` is not an http(s) address (where=``ACTNAV_LLM_URL``), or
            ``ACTNAV_LLM_MODEL`` is longer than 200 characters.
    """
    url = environ.get(ENV_URL, "").strip()
    if not url:
        return None
    try:
        parsed = TypeAdapter(AnyHttpUrl).validate_python(url)
    except ValidationError:
        raise InputError(
            "not an http:// or https:// address",
            where=ENV_URL,
            hint="for example http://127.0.0.1:8080/v1",
        ) from None
    key = environ.get(ENV_API_KEY, "").strip()
    try:
        return LanguageModelSettings(
            url=parsed,
            model=environ.get(ENV_MODEL, "").strip() or "default",
            api_key=SecretStr(key) if key else None,
        )
    except ValidationError:
        raise InputError("the model name is longer than 200 characters", where=ENV_MODEL) from None


class _Proposal(BaseModel):
    """One fact as the model gives it (unknown keys are ignored; the known ones must validate)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sentence: str = Field(max_length=10)
    kind: FactKind
    label: str = Field(min_length=1, max_length=200)
    quote: str = Field(min_length=1, max_length=MAX_SENTENCE_CHARS)
    concept: str | None = Field(default=None, max_length=64)
    value: str | None = Field(default=None, max_length=100)
    number: StrictFloat | StrictInt | None = None
    unit: str | None = Field(default=None, max_length=40)
    detail: str | None = Field(default=None, max_length=200)
    date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    negated: bool = False
    historical: bool = False
    family: bool = False
    hypothetical: bool = False
    uncertain: bool = False


class LanguageModel:
    """A client of one OpenAI-compatible chat-completions endpoint (see the module docstring).

    Implements the ``FactProposer`` protocol of :mod:`actnav.patient.notes.extract`:
    :meth:`propose` returns the facts; the warnings of the last call are in :attr:`warnings`.
    One instance per request or thread (the warnings are per call).

    Args:
        settings: where the model is.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
    """

    def __init__(self, settings: LanguageModelSettings, *, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self._transport = transport
        self.warnings: tuple[str, ...] = ()

    def propose(self, extraction: NoteExtraction) -> list[NoteFact]:
        """Facts for the unparsed sentences of ``extraction``, ids empty, ``origin="language_model"``.

        Sends nothing when there is no unparsed sentence. Never raises for a server problem or a bad
        answer: those become :attr:`warnings` (which never quote the note or the answer).
        """
        warnings: list[str] = []
        try:
            return self._propose(extraction, warnings)
        finally:
            self.warnings = tuple(warnings)

    # -- the exchange ------------------------------------------------------------------------------

    def _propose(self, extraction: NoteExtraction, warnings: list[str]) -> list[NoteFact]:
        sentences = [s for s in extraction.unparsed if s.end - s.start <= MAX_SENTENCE_CHARS]
        if len(sentences) < len(extraction.unparsed):
            warnings.append(
                f"language model: {len(extraction.unparsed) - len(sentences)} unparsed sentences longer "
                f"than {MAX_SENTENCE_CHARS} characters were not sent"
            )
        if len(sentences) > self.settings.max_sentences:
            warnings.append(
                f"language model: only the first {self.settings.max_sentences} of "
                f"{len(sentences)} unparsed sentences were sent"
            )
            sentences = sentences[: self.settings.max_sentences]
        if not sentences:
            return []
        by_id = {f"s{i}": s for i, s in enumerate(sentences, 1)}
        sent = {key: mask_identifiers(extraction.text[s.start : s.end]) for key, s in by_id.items()}
        content = self._ask(sent, warnings)
        if content is None:
            return []
        items = _facts_of(content)
        if items is None:
            warnings.append("language model: the answer was not the JSON object asked for; no facts taken")
            return []
        facts: list[NoteFact] = []
        dropped = 0
        for item in items[:MAX_FACTS]:
            fact = _checked(item, by_id, sent, extraction)
            if fact is None:
                dropped += 1
            else:
                facts.append(fact)
        dropped += max(0, len(items) - MAX_FACTS)
        if dropped:
            warnings.append(
                f"language model: {dropped} proposed "
                f"{'fact was' if dropped == 1 else 'facts were'} dropped (invalid, or the quote is "
                "not in its sentence)"
            )
        return facts

    def _ask(self, sentences: Mapping[str, str], warnings: list[str]) -> str | None:
        """The ``content`` of the model's answer, or None with a warning."""
        body = {
            "model": self.settings.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {
                    "role": "user",
                    "content": json.dumps(
                        {"sentences": [{"id": k, "text": v} for k, v in sentences.items()]},
                        ensure_ascii=False,
                    ),
                },
            ],
        }
        headers = {"Accept": "application/json"}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        seconds = self.settings.timeout_s
        try:
            with httpx.Client(
                transport=self._transport, timeout=seconds, follow_redirects=False, trust_env=False
            ) as client:
                response = client.post(self.settings.endpoint, json=body, headers=headers)
        except httpx.TimeoutException:
            warnings.append(f"language model: no answer within {seconds:g} s; facts are from the rules only")
            return None
        except httpx.HTTPError as err:
            warnings.append(
                f"language model: cannot reach {self.settings.endpoint} ({type(err).__name__}); "
                "facts are from the rules only"
            )
            return None
        if response.status_code != 200:
            warnings.append(
                f"language model: the server answered HTTP {response.status_code}; facts are from the "
                "rules only"
            )
            return None
        if len(response.content) > MAX_ANSWER_BYTES:
            warnings.append("language model: the answer is too large; no facts taken")
            return None
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            warnings.append("language model: the answer is not a chat completion; no facts taken")
            return None
        if not isinstance(content, str):
            warnings.append("language model: the answer is not a chat completion; no facts taken")
            return None
        return content


def language_model_from_env(environ: Mapping[str, str] | None = None) -> LanguageModel | None:
    """The configured language model, or None when ``ACTNAV_LLM_URL`` is unset (the default).

    Args:
        environ: the environment (default ``os.environ``).

    Raises:
        InputError: the settings are invalid (see :func:`settings_from_env`).
    """
    import os

    settings = settings_from_env(os.environ if environ is None else environ)
    return None if settings is None else LanguageModel(settings)


def mask_identifiers(text: str) -> str:
    """``text`` with e-mail addresses, telephone numbers, record numbers and runs of 7 or more
    digits replaced by ``#`` of the same length (so character offsets are unchanged)."""
    for pattern in (_EMAIL, _MRN, _PHONE, _DIGITS):
        text = pattern.sub(lambda m: "#" * len(m.group(0)), text)
    return text


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _facts_of(content: str) -> list[Any] | None:
    """The list of proposed facts in the answer's content, or None when it is not the JSON asked for."""
    fenced = _FENCE.match(content)  # some servers wrap JSON in a code fence despite response_format
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("facts")
    return data if isinstance(data, list) else None


def _checked(
    item: Any, by_id: Mapping[str, Span], sent: Mapping[str, str], extraction: NoteExtraction
) -> NoteFact | None:
    """A proposal as a NoteFact, or None when it fails any check (see the module docstring)."""
    try:
        proposal = _Proposal.model_validate(item)
    except ValidationError:
        return None
    sentence = by_id.get(proposal.sentence)
    if sentence is None:
        return None
    quote = proposal.quote.strip()
    at = sent[proposal.sentence].find(quote) if quote else -1
    if at < 0:
        return None
    start = sentence.start + at
    end = start + len(quote)
    known = known_concepts().get(proposal.kind, frozenset())
    concept = proposal.concept if proposal.concept in known else None
    value = proposal.value.strip() if proposal.value else None
    if proposal.kind in VALUES and value is not None and value not in VALUES[proposal.kind]:
        return None
    measured = _measure(proposal, concept)
    if measured is None:
        return None
    number, unit = measured
    try:
        date = None if proposal.date is None else dt.date.fromisoformat(proposal.date)
        if date is not None and date > extraction.as_of:
            return None
        return NoteFact(
            id="",
            kind=proposal.kind,
            label=proposal.label.strip(),
            span=Span(start=start, end=end, text=extraction.text[start:end]),
            sentence=Span(
                start=sentence.start, end=sentence.end, text=extraction.text[sentence.start : sentence.end]
            ),
            concept=concept,
            value=value,
            number=number,
            unit=unit,
            original=None
            if proposal.number is None
            else f"{proposal.number:g} {proposal.unit or ''}".strip(),
            detail=proposal.detail,
            date=date,
            negated=proposal.negated,
            historical=proposal.historical,
            family=proposal.family,
            hypothetical=proposal.hypothetical,
            uncertain=proposal.uncertain,
            origin="language_model",
        )
    except (ValueError, ValidationError):
        return None


def _measure(proposal: _Proposal, concept: str | None) -> tuple[float | None, str | None] | None:
    """``(number, unit)`` as a NoteFact holds them, or None when the number cannot be used.

    A lab of a known analyte is converted to its canonical unit and must be plausible; an age is in
    years (``a``) from 0 to 120; ECOG 0-5, Karnofsky 0-100. A number of another kind is kept as given.
    """
    unit = (proposal.unit or "").strip() or None
    if proposal.number is None:
        return None, None
    number = float(proposal.number)
    if not math.isfinite(number):
        return None
    if proposal.kind == "lab" and concept is not None:
        from actnav.errors import UnitError
        from actnav.patient.terminology import analyte, implausible
        from actnav.patient.units import to_unit

        target = analyte(concept).unit
        if unit is None:
            return None
        try:
            converted = to_unit(number, unit, target, "language model", analyte=concept)
        except UnitError:
            return None
        if implausible(concept, converted) is not None:
            return None
        return converted, target
    if proposal.kind == "age":
        return (number, "a") if 0 <= number <= 120 and unit in (None, "a", "y", "yr", "years") else None
    if proposal.kind == "performance_status":
        top = {"ecog": 5, "karnofsky": 100}.get(concept or "")
        if top is None or not (0 <= number <= top) or number != int(number):
            return None
        return number, "{score}"
    return number, unit


@cache
def known_concepts() -> dict[str, frozenset[str]]:
    """The actnav keys a fact's ``concept`` may name, by kind: the concepts of the note target rules
    (``data/notes/targets``) plus diagnoses.yaml concepts, drugs.yaml agents and regimens and
    labs.yaml analytes."""
    from actnav.patient import terminology as t
    from actnav.patient.notes.pipeline import target_rules

    found: dict[str, set[str]] = {}
    for rule in target_rules():
        if rule.concept:
            found.setdefault(rule.kind, set()).add(rule.concept)
    found.setdefault("diagnosis", set()).update(c.id for c in t.diagnoses().concepts)
    found.setdefault("therapy", set()).update(a.name for a in t.drugs().agents)
    found["therapy"].update(r.name for r in t.drugs().regimens)
    found.setdefault("lab", set()).update(a.key for a in t.labs().analytes)
    found.setdefault("performance_status", set()).update({"ecog", "karnofsky"})
    return {kind: frozenset(keys) for kind, keys in found.items()}
