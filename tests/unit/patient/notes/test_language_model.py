"""The optional language model: settings, what is sent, how proposals are checked, failures as warnings.

Two fake servers: ``httpx.MockTransport`` for most cases and one real HTTP server (a FastAPI app under
uvicorn on 127.0.0.1, in a thread) that answers with canned chat completions.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from actnav.errors import InputError
from actnav.patient.notes.language_model import (
    LanguageModel,
    LanguageModelSettings,
    language_model_from_env,
    mask_identifiers,
    settings_from_env,
)
from actnav.patient.notes.model import NoteExtraction, NoteFact, Span

AS_OF = dt.date(2026, 11, 29)
PARSED = "A 64 year old woman with multiple myeloma."
LAB = "Her platelets were 85,000/uL last week."
BIOPSY = "Bone marrow biopsy showed 40% plasma cells."
ADMIN = "Seen in clinic, MRN 40817265."
NOTE = " ".join((PARSED, LAB, BIOPSY, ADMIN))


def _span(sentence: str) -> Span:
    start = NOTE.index(sentence)
    return Span(start=start, end=start + len(sentence), text=sentence)


def extraction() -> NoteExtraction:
    """A note whose first sentence the rules read (multiple myeloma) and three they did not."""
    at = NOTE.index("multiple myeloma")
    myeloma = NoteFact(
        id="f1",
        kind="diagnosis",
        label="multiple myeloma",
        span=Span(start=at, end=at + len("multiple myeloma"), text="multiple myeloma"),
        sentence=_span(PARSED),
        concept="multiple_myeloma",
    )
    return NoteExtraction(
        text=NOTE, as_of=AS_OF, facts=(myeloma,), unparsed=(_span(LAB), _span(BIOPSY), _span(ADMIN))
    )


def completion(content: object) -> dict[str, Any]:
    """An OpenAI chat-completions answer whose message content is ``content`` (JSON-encoded unless a str)."""
    text = content if isinstance(content, str) else json.dumps(content)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


PLATELETS = {
    "sentence": "s1",
    "kind": "lab",
    "label": "platelets 85 x10^9/L",
    "quote": "platelets were 85,000/uL",
    "concept": "platelets",
    "number": 85000,
    "unit": "/uL",
}
NOT_IN_SENTENCE = {
    "sentence": "s2",
    "kind": "diagnosis",
    "label": "plasma cell leukemia",
    "quote": "plasma cell leukemia",
}


class Recorder:
    """A MockTransport handler answering with ``answer`` and keeping every request body."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]):
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        self.headers.append(request.headers)
        return self.answer(request)


def model_with(
    answer: Callable[[httpx.Request], httpx.Response], **settings: Any
) -> tuple[LanguageModel, Recorder]:
    recorder = Recorder(answer)
    chosen = {"url": "http://llm.test/v1", "model": "local", **settings}
    return LanguageModel(
        LanguageModelSettings.model_validate(chosen), transport=httpx.MockTransport(recorder)
    ), recorder


def answering(content: object, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=completion(content))


def sent_sentences(body: dict[str, Any]) -> list[str]:
    user = next(m for m in body["messages"] if m["role"] == "user")
    return [s["text"] for s in json.loads(user["content"])["sentences"]]


def assert_note_not_in(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        for sentence in (PARSED, LAB, BIOPSY, ADMIN):
            assert sentence not in warning
        assert "platelets" not in warning and "40817265" not in warning


# -- settings ----------------------------------------------------------------------------------


def test_off_unless_the_url_is_set() -> None:
    assert settings_from_env({}) is None
    assert settings_from_env({"ACTNAV_LLM_URL": "  ", "ACTNAV_LLM_MODEL": "x"}) is None
    assert language_model_from_env({}) is None


def test_settings_from_the_environment() -> None:
    settings = settings_from_env(
        {
            "ACTNAV_LLM_URL": "http://127.0.0.1:8080/v1/",
            "ACTNAV_LLM_MODEL": "qwen",
            "ACTNAV_LLM_API_KEY": "k3y",
        }
    )
    assert settings is not None
    assert settings.endpoint == "http://127.0.0.1:8080/v1/chat/completions"
    assert settings.model == "qwen"
    assert settings.timeout_s == 20 and settings.max_sentences == 20
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k3y"
    assert "k3y" not in repr(settings)
    model = language_model_from_env({"ACTNAV_LLM_URL": "https://llm.example.org"})
    assert model is not None and model.settings.model == "default" and model.settings.api_key is None


@pytest.mark.parametrize("url", ["llm.local:8080", "ftp://llm.local/v1", "http://", "not a url"])
def test_an_invalid_url_is_an_input_error_naming_the_variable(url: str) -> None:
    with pytest.raises(InputError) as raised:
        settings_from_env({"ACTNAV_LLM_URL": url})
    assert raised.value.where == "ACTNAV_LLM_URL"


# -- what is sent ------------------------------------------------------------------------------


def test_only_the_unparsed_sentences_are_sent_with_identifiers_masked() -> None:
    model, recorder = model_with(answering({"facts": []}), api_key="s3cret")
    assert model.propose(extraction()) == []
    (body,) = recorder.bodies
    assert body["model"] == "local"
    assert body["response_format"] == {"type": "json_object"}
    assert sent_sentences(body) == [LAB, BIOPSY, "Seen in clinic, ############."]
    everything = json.dumps(body)
    assert PARSED not in everything and "40817265" not in everything and str(AS_OF) not in everything
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    assert "myeloma" not in user  # the system message names concepts; the patient's words are not sent
    assert recorder.headers[0]["authorization"] == "Bearer s3cret"


def test_masking_keeps_offsets() -> None:
    text = "Call 555-867-5309 or mail a.b@example.org; chart # 77812345; platelets 150000/uL."
    masked = mask_identifiers(text)
    assert len(masked) == len(text)
    assert "5309" not in masked and "example.org" not in masked and "77812345" not in masked
    assert "platelets 150000/uL" in masked  # six digits: a lab value, not an identifier


def test_nothing_is_sent_when_the_rules_read_every_sentence() -> None:
    model, recorder = model_with(answering({"facts": []}))
    assert model.propose(extraction().model_copy(update={"unparsed": ()})) == []
    assert recorder.bodies == []


def test_at_most_max_sentences_are_sent() -> None:
    model, recorder = model_with(answering({"facts": []}), max_sentences=2)
    model.propose(extraction())
    assert sent_sentences(recorder.bodies[0]) == [LAB, BIOPSY]
    assert model.warnings == ("language model: only the first 2 of 3 unparsed sentences were sent",)


# -- what is taken -----------------------------------------------------------------------------


def test_a_valid_lab_becomes_a_fact_in_the_canonical_unit_with_offsets_computed_here() -> None:
    # 85,000/uL = 85 x 10^9/L (1/uL = 10^6/L; clinical-reference.md 6a.1 via units.yaml).
    wrong_offsets = {**PLATELETS, "start": 0, "end": 3}
    model, _ = model_with(answering({"facts": [wrong_offsets]}))
    (fact,) = model.propose(extraction())
    assert fact.origin == "language_model" and fact.review == "pending" and fact.id == ""
    assert fact.kind == "lab" and fact.concept == "platelets"
    assert fact.number == pytest.approx(85) and fact.unit == "10*9/L"
    assert NOTE[fact.span.start : fact.span.end] == "platelets were 85,000/uL"
    assert fact.span.start == NOTE.index("platelets")
    assert (fact.sentence.start, fact.sentence.end) == (NOTE.index(LAB), NOTE.index(LAB) + len(LAB))
    assert model.warnings == ()


def test_a_quote_not_in_its_sentence_is_dropped_and_counted() -> None:
    model, _ = model_with(answering({"facts": [PLATELETS, NOT_IN_SENTENCE]}))
    facts = model.propose(extraction())
    assert [f.concept for f in facts] == ["platelets"]
    assert model.warnings == (
        "language model: 1 proposed fact was dropped (invalid, or the quote is not in its sentence)",
    )


@pytest.mark.parametrize(
    "item",
    [
        {**PLATELETS, "kind": "smoking"},  # not a FactKind
        {**PLATELETS, "sentence": "s9"},  # no such sentence
        {**PLATELETS, "quote": "platelets"[::-1]},
        {**PLATELETS, "quote": "Platelets were"},  # not verbatim (case)
        {**PLATELETS, "unit": "furlongs"},  # unknown unit
        {**PLATELETS, "number": 85000, "unit": "10*9/L"},  # implausible in the canonical unit
        {**PLATELETS, "number": True},
        {"sentence": "s2", "kind": "sex", "label": "female", "quote": "Bone", "value": "woman"},
        {**PLATELETS, "date": "2027-01-01"},  # after the note's date
        {**PLATELETS, "date": "last week"},
        "platelets",
    ],
)
def test_invalid_proposals_are_dropped(item: object) -> None:
    model, _ = model_with(answering({"facts": [item]}))
    assert model.propose(extraction()) == []
    assert model.warnings and "dropped" in model.warnings[0]


def test_an_unknown_concept_is_kept_as_none_so_the_fact_is_shown_not_used() -> None:
    item = {"sentence": "s2", "kind": "diagnosis", "label": "plasma cells", "quote": "40% plasma cells",
            "concept": "plasma_cell_excess"}  # fmt: skip
    model, _ = model_with(answering([item]))  # a bare list is accepted too
    (fact,) = model.propose(extraction())
    assert fact.concept is None and fact.label == "plasma cells"


def test_flags_are_kept_so_a_family_history_never_becomes_a_patient_fact() -> None:
    item = {"sentence": "s2", "kind": "diagnosis", "label": "myeloma in a relative", "quote": "Bone marrow",
            "concept": "multiple_myeloma", "family": True}  # fmt: skip
    model, _ = model_with(answering({"facts": [item]}))
    (fact,) = model.propose(extraction())
    assert fact.family and not fact.about_patient


def test_extract_note_adds_the_proposals_numbered_in_span_order_with_the_warnings() -> None:
    from actnav.patient.notes.extract import extract_note

    # The rules read the platelets, so the unparsed sentences are the biopsy (s1) and the clinic (s2).
    plasma = {"sentence": "s1", "kind": "diagnosis", "label": "plasma cells", "quote": "40% plasma cells"}
    model, recorder = model_with(answering({"facts": [plasma, NOT_IN_SENTENCE]}))
    read = extract_note(NOTE, as_of=AS_OF, language_model=model)
    assert sent_sentences(recorder.bodies[0]) == [BIOPSY, "Seen in clinic, ############."]
    proposed = [f for f in read.facts if f.origin == "language_model"]
    assert [(f.label, f.span.text) for f in proposed] == [("plasma cells", "40% plasma cells")]
    assert read.facts[-1] == proposed[0]  # the biopsy sentence comes after the rules' facts
    assert [f.id for f in read.facts] == [f"f{i}" for i in range(1, len(read.facts) + 1)]
    assert "1 proposed fact was dropped" in " ".join(read.warnings)
    assert PARSED not in json.dumps(recorder.bodies)


# -- failures become warnings ------------------------------------------------------------------


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (answering("Sure! Here are the facts: platelets 85"), "the answer was not the JSON object asked for"),
        (answering({"facts": "none"}), "the answer was not the JSON object asked for"),
        (lambda r: httpx.Response(200, text="<html>platelets</html>"), "the answer is not a chat completion"),
        (lambda r: httpx.Response(200, json={"choices": []}), "the answer is not a chat completion"),
        (lambda r: httpx.Response(500, text="boom"), "the server answered HTTP 500"),
        (lambda r: httpx.Response(401, json={"error": "bad key"}), "the server answered HTTP 401"),
        (_timeout, "no answer within 20 s"),
        (_refused, "cannot reach http://llm.test/v1/chat/completions (ConnectError)"),
    ],
)
def test_failures_are_warnings_not_errors(
    answer: Callable[[httpx.Request], httpx.Response], expected: str
) -> None:
    model, _ = model_with(answer)
    assert model.propose(extraction()) == []
    (warning,) = model.warnings
    assert expected in warning
    assert_note_not_in(model.warnings)


def test_a_json_answer_in_a_code_fence_is_read() -> None:
    model, _ = model_with(answering("```json\n" + json.dumps({"facts": [PLATELETS]}) + "\n```"))
    assert [f.concept for f in model.propose(extraction())] == ["platelets"]


# -- a real HTTP server ------------------------------------------------------------------------


class Canned:
    """What the fake server answers next: ``mode`` is valid, stray_quote, garbage, error or slow."""

    mode = "valid"
    bodies: list[dict[str, Any]] = []  # noqa: RUF012 - shared with the server thread on purpose


def fake_llm() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        Canned.bodies.append(await request.json())
        if Canned.mode == "valid":
            return JSONResponse(completion({"facts": [PLATELETS]}))
        if Canned.mode == "stray_quote":
            return JSONResponse(completion({"facts": [PLATELETS, NOT_IN_SENTENCE]}))
        if Canned.mode == "garbage":
            return JSONResponse(completion('{"facts": [{"kind": "lab", '))
        if Canned.mode == "slow":
            time.sleep(1.5)
            return JSONResponse(completion({"facts": [PLATELETS]}))
        return PlainTextResponse("internal error", status_code=500)

    return app


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(
        fake_llm(), host="127.0.0.1", port=port, http="h11", ws="none", lifespan="off", log_level="warning",
        access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-llm", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the fake language model server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize(
    ("mode", "concepts", "warning"),
    [
        ("valid", ["platelets"], None),
        ("stray_quote", ["platelets"], "1 proposed fact was dropped"),
        ("garbage", [], "the answer was not the JSON object asked for"),
        ("error", [], "the server answered HTTP 500"),
        ("slow", [], "no answer within 0.5 s"),
    ],
)
def test_against_a_local_http_server(
    server_url: str, mode: str, concepts: list[str], warning: str | None
) -> None:
    Canned.mode = mode
    Canned.bodies.clear()
    model = language_model_from_env({"ACTNAV_LLM_URL": server_url, "ACTNAV_LLM_MODEL": "fake"})
    assert model is not None
    model = LanguageModel(model.settings.model_copy(update={"timeout_s": 0.5}))
    facts = model.propose(extraction())
    assert [f.concept for f in facts] == concepts
    assert all(NOTE[f.span.start : f.span.end] == f.span.text for f in facts)
    if warning is None:
        assert model.warnings == ()
    else:
        (found,) = model.warnings
        assert warning in found
    assert_note_not_in(model.warnings)
    (body,) = Canned.bodies
    assert sent_sentences(body) == [LAB, BIOPSY, "Seen in clinic, ############."]
