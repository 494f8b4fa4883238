"""`vectors.min_score` and `vectors.top_k` chosen by measurement (issue 12, §10).

A small labelled set, embedded with the bundled MiniLM (the real model, as `parlour serve`
uses it): questions, the chunks that answer them (paraphrased, not copied), and
unrelated chunks from the same kinds of documents people upload. The configured defaults
must keep every relevant chunk and drop every unrelated one; and `POST /run` without a
chat cites the asker's related document only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.config import EmbeddingSettings, VectorSettings, load_settings
from app.rag.embeddings import Embedder, build_embedder
from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.test_documents import upload_documents
from tests.test_files import wait_status


@dataclass(frozen=True)
class Case:
    question: str
    relevant: tuple[str, ...]


CASES = (
    Case("How should I store apples so they stay fresh?", (
        "Apples keep longest in the fridge's crisper drawer, away from bananas: at about "
        "4 °C they stay crisp for four to six weeks, on the counter only a week.",
        "Ripe apples give off ethylene gas, which speeds up the ripening of fruit stored "
        "next to them, so keep them apart from other produce.",
    )),
    Case("When is the rent due each month?", (
        "The tenant pays the monthly rent of 950 euros by bank transfer no later than the "
        "third working day of each month.",
    )),
    Case("What is the Wi-Fi password in the office?", (
        "Guest network: ParlourGuest. The wireless key for staff is printed on the back "
        "of the router in the kitchen and changes every quarter.",
    )),
    Case("How many vacation days do employees get?", (
        "Full-time staff receive 25 days of paid annual leave per calendar year; unused "
        "days may be carried over until the end of March.",
    )),
    Case("How do I reset my password?", (
        "To choose a new password, open Settings, then Security, and click 'Forgot "
        "password'; a link valid for one hour is emailed to you.",
    )),
    Case("What should I do if the dishwasher shows error E24?", (
        "Error E24 on the dishwasher means the water is not draining: clean the filter at "
        "the bottom of the tub and check that the drain hose is not kinked.",
    )),
    Case("Who won the 1998 football World Cup?", (
        "France beat Brazil 3-0 in the final at the Stade de France on 12 July 1998 to "
        "win its first World Cup, with two goals by Zinedine Zidane.",
    )),
    Case("How long should I boil an egg for a soft yolk?", (
        "For a runny yolk, lower the egg into boiling water and cook it for six minutes, "
        "then cool it under cold water.",
    )),
)

# Chunks that answer none of the questions, from the kinds of files people share.
UNRELATED = (
    "Invoice 2024-117: 3 hours of consulting at 120 EUR per hour, VAT 19 %, payable "
    "within 30 days to the account below.",
    "Minutes of the board meeting: the budget for the new warehouse was approved; the "
    "next meeting is on the 14th.",
    "Route 12 buses leave the central depot every twenty minutes on weekdays and every "
    "hour on Sundays.",
    "def parse(line):\n    key, _, value = line.partition('=')\n    return key.strip(), "
    "value.strip()",
    "The community garden grows tomatoes, basil and three kinds of squash; volunteers "
    "water the beds on Tuesday evenings.",
    "Release notes 2.3: faster start-up, a dark theme, and a fix for the crash when "
    "exporting large spreadsheets.",
    "Our quarterly revenue grew 12 percent, driven by subscriptions in the Nordic "
    "countries and a lower churn rate.",
    "The museum is closed on Mondays; guided tours in English start at 11:00 and 15:00 "
    "from the main hall.",
    "Please return borrowed laptops to the IT desk on the second floor before your last "
    "working day.",
    "The hiking trail to the lake is 7 kilometres long, mostly shaded, with a steep "
    "section after the wooden bridge.",
    "Apple Inc. reported record iPhone sales in the fourth quarter and announced a new "
    "share buyback programme.",
)


@dataclass(frozen=True)
class Measurement:
    """Per question: the scores of its relevant chunks and of every other chunk."""

    relevant: list[list[float]]
    unrelated: list[list[float]]

    @property
    def worst_relevant(self) -> float:
        return min(min(scores) for scores in self.relevant)

    @property
    def best_unrelated(self) -> float:
        return max(max(scores) for scores in self.unrelated)


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # unit vectors: cosine similarity


async def measure(embedder: Embedder) -> Measurement:
    """Cosine scores of every question against every chunk of the set."""
    chunks = [c for case in CASES for c in case.relevant] + list(UNRELATED)
    questions = [case.question for case in CASES]
    vectors = await embedder.embed(questions + chunks)
    q_vectors, c_vectors = vectors[: len(questions)], dict(zip(chunks, vectors[len(questions):],
                                                              strict=True))
    relevant, unrelated = [], []
    for case, q in zip(CASES, q_vectors, strict=True):
        relevant.append([_dot(q, c_vectors[c]) for c in case.relevant])
        unrelated.append([_dot(q, v) for c, v in c_vectors.items() if c not in case.relevant])
    return Measurement(relevant, unrelated)


@pytest.fixture(scope="module")
async def measured() -> AsyncIterator[Measurement]:
    embedder = build_embedder(EmbeddingSettings())
    try:
        yield await measure(embedder)
    finally:
        await embedder.close()


def defaults() -> VectorSettings:
    """The shipped defaults: config.toml as `parlour serve` reads it."""
    return load_settings(None).vectors


async def test_min_score_lies_in_the_measured_gap(measured: Measurement) -> None:
    floor = defaults().min_score
    assert VectorSettings().min_score == floor  # the code's default agrees with config.toml
    # The gap exists: the worst relevant chunk outscores the best unrelated one.
    assert measured.best_unrelated < measured.worst_relevant, (
        measured.best_unrelated, measured.worst_relevant)
    # The default keeps a margin on both sides (rounded midpoint of the gap).
    assert measured.best_unrelated + 0.05 <= floor <= measured.worst_relevant - 0.05, (
        measured.best_unrelated, floor, measured.worst_relevant)
    midpoint = (measured.best_unrelated + measured.worst_relevant) / 2
    assert abs(floor - midpoint) <= 0.05


async def test_top_k_keeps_every_relevant_chunk_and_no_unrelated_one(
    measured: Measurement,
) -> None:
    settings = defaults()
    assert VectorSettings().top_k == settings.top_k
    most = max(len(case.relevant) for case in CASES)
    assert settings.top_k >= most
    for case, rel, other in zip(CASES, measured.relevant, measured.unrelated, strict=True):
        ranked = sorted([(s, True) for s in rel] + [(s, False) for s in other], reverse=True)
        kept = [is_relevant for score, is_relevant in ranked[: settings.top_k]
                if score >= settings.min_score]
        assert kept == [True] * len(case.relevant), case.question


async def test_run_without_a_chat_cites_only_the_related_document(make_settings: Any) -> None:
    provider = ScriptedProvider()
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed"), providers={"scripted": provider}
    )
    try:
        await _run_cites_related_only(server, provider)
    finally:
        await server.close()


async def _run_cites_related_only(server: Parlour, provider: ScriptedProvider) -> None:
    user, other = await server.signup(), await server.signup()
    apples = " ".join(CASES[0].relevant).encode()
    _, data = await upload_documents(
        server, user, ("apples.txt", apples, None), ("invoice.txt", UNRELATED[0].encode(), None),
        ("board.txt", UNRELATED[1].encode(), None),
    )
    await asyncio.gather(*(
        wait_status(server, user, f"/api/v1/documents/{d['document_id']}")
        for d in data["documents"]))

    status, answer = await server.request(
        "POST", "/api/v1/run", user, json={"text": CASES[0].question})
    assert status == 200, answer
    assert {s["filename"] for s in answer["sources"]} == {"apples.txt"}
    assert all(s["score"] >= defaults().min_score for s in answer["sources"])
    system = provider.prompts[-1][0]
    assert system.role == "system" and "crisper drawer" in system.content  # given to the model

    status, answer = await server.request(
        "POST", "/api/v1/run", user, json={"text": "When does the museum open on Sundays?"})
    assert status == 200 and answer["sources"] == []
    # Someone else's question never sees these documents.
    status, answer = await server.request(
        "POST", "/api/v1/run", other, json={"text": CASES[0].question})
    assert status == 200 and answer["sources"] == []
