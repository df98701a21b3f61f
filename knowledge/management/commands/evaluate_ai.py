"""Test the AI agent on a list of questions before switching it on:

    manage.py evaluate_ai --tenant acme --questions qa.csv [--no-llm] [--json]

qa.csv has a `question` column and optionally `expected_source` (a source title, or part of one). Each
question runs through what the agent would do (the handoff checks, retrieval with the tenant's threshold,
the tenant's LLM if one is configured, unless --no-llm); nothing is sent and nothing is stored. Prints,
per question, the outcome (answer or handoff reason) and the sources used, then the answer rate, the
handoff rate (by reason) and, where expected sources were given, how often the right source was used.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from knowledge.agent import answer_question, screen
from knowledge.ai_settings import llm_config
from knowledge.models import AgentSettings
from tenants.models import Tenant

MAX_QUESTIONS = 1000


def read_questions(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip().lower() for f in reader.fieldnames or []]
            if "question" not in fields:
                raise CommandError(
                    f"{path}: the CSV needs a 'question' column (and may have 'expected_source')."
                )
            rows = []
            for raw in reader:
                row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k}
                if row.get("question"):
                    rows.append(
                        {"question": row["question"], "expected_source": row.get("expected_source", "")}
                    )
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CommandError(f"{path} is not a UTF-8 CSV file: {exc}") from exc
    if not rows:
        raise CommandError(f"{path} has no questions.")
    if len(rows) > MAX_QUESTIONS:
        raise CommandError(f"{path} has {len(rows)} questions; at most {MAX_QUESTIONS} per run.")
    return rows


def evaluate(rows: list[dict[str, str]], *, settings: AgentSettings, use_llm: bool) -> dict[str, Any]:
    config = llm_config(settings) if use_llm else None
    results = []
    for row in rows:
        decision = screen(row["question"], settings=settings) or answer_question(
            row["question"], settings=settings, config=config
        )
        titles = [s["title"] for s in decision.sources]
        expected = row["expected_source"]
        hit = None
        if expected:
            hit = any(expected.casefold() in title.casefold() for title in titles)
        results.append(
            {
                "question": row["question"],
                "outcome": "answer" if decision.action == "reply" else "handoff",
                "reason": decision.reason,
                "answer": decision.text,
                "sources": decision.sources,
                "expected_source": expected,
                "expected_source_used": hit,
            }
        )
    total = len(results)
    answered = sum(1 for r in results if r["outcome"] == "answer")
    with_expected = [r for r in results if r["expected_source"]]
    return {
        "questions": total,
        "answer_rate": answered / total,
        "handoff_rate": (total - answered) / total,
        "handoff_reasons": dict(Counter(r["reason"] for r in results if r["outcome"] == "handoff")),
        "expected_source_rate": (
            sum(1 for r in with_expected if r["expected_source_used"]) / len(with_expected)
            if with_expected
            else None
        ),
        "mode": "llm" if config is not None else "passage",
        "results": results,
    }


class Command(BaseCommand):
    help = "Run questions through the tenant's AI agent (nothing sent, nothing stored) and print the rates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant's slug")
        parser.add_argument("--questions", required=True, type=Path, help="CSV: question[,expected_source]")
        parser.add_argument(
            "--no-llm", action="store_true", help="answer with the best passage even if an LLM is set"
        )
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug {options['tenant']!r}.")
        rows = read_questions(options["questions"])
        with schema_context(tenant.schema_name):
            settings = AgentSettings.objects.get_or_create(pk=1)[0]
            report = evaluate(rows, settings=settings, use_llm=not options["no_llm"])
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2))
            return
        for number, result in enumerate(report["results"], start=1):
            outcome = "answer" if result["outcome"] == "answer" else f"handoff ({result['reason']})"
            self.stdout.write(f"{number}. {result['question']}\n   → {outcome}")
            for source in result["sources"]:
                self.stdout.write(f"     source: {source['title']} (score {source['score']:.2f})")
            if result["expected_source"]:
                mark = "yes" if result["expected_source_used"] else "NO"
                self.stdout.write(f"     expected source {result['expected_source']!r} used: {mark}")
        self.stdout.write("")
        self.stdout.write(f"Questions:     {report['questions']} (mode: {report['mode']})")
        self.stdout.write(f"Answer rate:   {report['answer_rate']:.0%}")
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report["handoff_reasons"].items())) or "none"
        self.stdout.write(f"Handoff rate:  {report['handoff_rate']:.0%} ({reasons})")
        if report["expected_source_rate"] is not None:
            self.stdout.write(
                f"Right source:  {report['expected_source_rate']:.0%} of questions with an expected source"
            )
