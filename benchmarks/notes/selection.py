"""The fixed rule that chose the gold topics (written down before any topic was annotated).

1. Every topic of trec_2021, trec_2022 and sigir with a judgment in
   ``../shared/data/ctgov-act-trials/index.tsv`` (column ``qrels_judgments``).
2. Every oncology topic of the three sets: the topic text matches :data:`ONCOLOGY` (cancer terms,
   case-insensitive, whatever the context, so a negated or family mention also selects it).
3. Then the first topics by id (numeric order) of each set, taken in turn (trec_2021, trec_2022,
   sigir, trec_2021, ...), skipping those already chosen, until there are at least 45 topics of
   which at least 10 are not oncology topics.

The held-out topics (:func:`heldout_topics`, written down before any of them was read) are chosen by
a second fixed rule, so that a set nobody tunes the extractor on estimates its accuracy honestly:
for each set in turn (trec_2021, trec_2022, sigir), among the topics not chosen above, in id order,
first up to :data:`HELDOUT_ONCOLOGY_PER_SET` topics whose text matches :data:`ONCOLOGY_SUGGESTIVE`
(step 2 already took every :data:`ONCOLOGY` topic, so these are neoplasm abbreviations and names the
first pattern misses, and work-up findings of a possible tumour: mass, nodule, biopsy,
lymphadenopathy), then the first remaining topics by id until the set has
:data:`HELDOUT_PER_SET` topics.

The test topics (:func:`test_topics`, written down before any of them was read) are a second
held-out set, for the final figures once the first held-out set has been looked at too: for each
set in turn (trec_2021, trec_2022, sigir), the last :data:`TEST_PER_SET` topics by id (numeric
order) that neither :func:`select` nor :func:`heldout_topics` chose, listed in id order.

Usage: ``python benchmarks/notes/selection.py [--shared ../shared] [--heldout | --test]`` prints the
chosen ids.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

SETS = ("trec_2021", "trec_2022", "sigir")
MINIMUM_TOPICS = 45
MINIMUM_NON_ONCOLOGY = 10
ONCOLOGY = re.compile(
    r"cancer|carcinoma|tumou?r|neoplas|malignan|lymphoma|leuka?emia|myeloma|melanoma|sarcoma|"
    r"astrocytoma|glioma|glioblastoma|blastoma|mesothelioma|metasta|oncolog|chemotherap",
    re.IGNORECASE,
)


HELDOUT_PER_SET = 8
HELDOUT_ONCOLOGY_PER_SET = 4
# Abbreviations are matched case-sensitively ("ALL" the leukaemia, not "all").
ONCOLOGY_SUGGESTIVE = re.compile(
    r"\b(?:CLL|CML|AML|ALL|MDS|NHL|HCC|NSCLC|SCLC|GBM|DCIS|MGUS|PSA|CEA)\b|"
    r"(?i:hodgkin|myelodysplas|myeloprolif|polycyth|thrombocythemia|myelofibros|mastocytos|adenoma|"
    r"\bmass(?:es)?\b|nodul|biops|lymphadenopathy)"
)


def _number(topic_id: str) -> tuple[int, int]:
    """Sort key of a topic id: ``trec-202117`` -> (2021, 17), ``sigir-201525`` -> (2015, 25)."""
    digits = topic_id.split("-", 1)[1]
    return int(digits[:4]), int(digits[4:])


def load_topics(shared: Path) -> dict[str, list[dict[str, str]]]:
    """Topics per set, in id order: ``{set: [{"_id", "text"}, ...]}``."""
    topics: dict[str, list[dict[str, str]]] = {}
    for name in SETS:
        path = shared / "data" / "trialgpt-benchmarks" / name / "queries.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        topics[name] = sorted(rows, key=lambda row: _number(row["_id"]))
    return topics


def judged_topics(shared: Path) -> set[str]:
    """Topic ids named in ``qrels_judgments`` of the ACT trials index."""
    index = shared / "data" / "ctgov-act-trials" / "index.tsv"
    lines = index.read_text(encoding="utf-8").splitlines()
    column = lines[0].split("\t").index("qrels_judgments")
    found: set[str] = set()
    for line in lines[1:]:
        for item in re.split(r"[,;\s]+", line.split("\t")[column]):
            if "=" in item:
                found.add(item.split("=", 1)[0])
    return found


def select(shared: Path) -> list[tuple[str, str, str]]:
    """The chosen topics as ``(set, id, reason)`` with reason judged / oncology / first."""
    topics = load_topics(shared)
    judged = judged_topics(shared)
    chosen: dict[str, tuple[str, str, str]] = {}
    for name in SETS:
        for row in topics[name]:
            if row["_id"] in judged:
                chosen[row["_id"]] = (name, row["_id"], "judged")
    for name in SETS:
        for row in topics[name]:
            if row["_id"] not in chosen and ONCOLOGY.search(row["text"]):
                chosen[row["_id"]] = (name, row["_id"], "oncology")
    texts = {row["_id"]: row["text"] for name in SETS for row in topics[name]}

    def non_oncology() -> int:
        return sum(1 for tid in chosen if not ONCOLOGY.search(texts[tid]))

    position = 0
    while len(chosen) < MINIMUM_TOPICS or non_oncology() < MINIMUM_NON_ONCOLOGY:
        for name in SETS:
            if position < len(topics[name]):
                row = topics[name][position]
                if row["_id"] not in chosen:
                    chosen[row["_id"]] = (name, row["_id"], "first")
        position += 1
    return list(chosen.values())


def heldout_topics(shared: Path) -> list[tuple[str, str, str]]:
    """The held-out topics as ``(set, id, reason)``, reason oncology (suggestive terms) or first.

    Disjoint from :func:`select` by construction; per set, oncology-suggestive topics come first
    (in id order), then the others by id.
    """
    topics = load_topics(shared)
    taken = {topic_id for _, topic_id, _ in select(shared)}
    chosen: list[tuple[str, str, str]] = []
    for name in SETS:
        rest = [row for row in topics[name] if row["_id"] not in taken]
        suggestive = [row["_id"] for row in rest if ONCOLOGY_SUGGESTIVE.search(row["text"])]
        picked = suggestive[:HELDOUT_ONCOLOGY_PER_SET]
        others = [row["_id"] for row in rest if row["_id"] not in picked]
        picked_others = others[: HELDOUT_PER_SET - len(picked)]
        ordered = sorted(picked + picked_others, key=_number)
        chosen.extend((name, tid, "oncology" if tid in picked else "first") for tid in ordered)
    return chosen


TEST_PER_SET = 8


def test_topics(shared: Path) -> list[tuple[str, str, str]]:
    """The test topics as ``(set, id, "last")``: per set, the last :data:`TEST_PER_SET` by id.

    Only topics chosen by neither :func:`select` nor :func:`heldout_topics` qualify, so the three
    sets are disjoint by construction; each set's topics are listed in id order.
    """
    topics = load_topics(shared)
    taken = {topic_id for _, topic_id, _ in select(shared)}
    taken |= {topic_id for _, topic_id, _ in heldout_topics(shared)}
    chosen: list[tuple[str, str, str]] = []
    for name in SETS:
        rest = [row["_id"] for row in topics[name] if row["_id"] not in taken]
        chosen.extend((name, tid, "last") for tid in rest[-TEST_PER_SET:])
    return chosen


# Not a pytest test despite its name (the brief named it after the test set).
test_topics.__test__ = False  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--heldout", action="store_true", help="print the held-out topics instead")
    which.add_argument("--test", action="store_true", help="print the test topics instead")
    args = parser.parse_args()
    if args.test:
        rows = test_topics(args.shared)
    elif args.heldout:
        rows = heldout_topics(args.shared)
    else:
        rows = select(args.shared)
    for name, topic_id, reason in rows:
        print(f"{name}\t{topic_id}\t{reason}")
    print(f"{len(rows)} topics")


if __name__ == "__main__":
    main()
