"""Write the known-mapping benchmark data set to a folder: `manage.py make_benchmark_dataset OUT`."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.evaluation import known_mapping


def load_filter(spec: str) -> Any:
    """A registered filter name ("cartoon") or an importable callable ("package.module:function")."""
    if ":" not in spec:
        return spec
    module_name, _, attribute = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise CommandError(f"cannot import the filter {spec!r}: {exc}") from exc
    if not callable(function):
        raise CommandError(f"{spec!r} is not callable")
    return function


class Command(BaseCommand):
    help = (
        "Make an unpaired A/B data set with a known mapping: random crops of the sample photographs that "
        "scikit-image and scikit-learn ship (A), and a deterministic filter of other crops (B), plus held-out "
        "test pairs (test/A, test/B = filter(test/A)) and manifest.json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out", help="folder to write A/, B/, test/ and manifest.json into (must be empty or new)")
        parser.add_argument("--size", type=int, default=64, help="crop side in pixels (default 64)")
        parser.add_argument("--n-a", type=int, default=200, help="training photographs (domain A)")
        parser.add_argument("--n-b", type=int, default=200, help="training filtered photographs (domain B)")
        parser.add_argument("--n-test", type=int, default=50, help="held-out test pairs")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--max-scale", type=float, default=2.0, help="crops span 1x to this many times --size")
        parser.add_argument("--filter", default="cartoon",
                            help='a registered filter ("cartoon") or any callable as "package.module:function"')

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        if out.exists() and any(out.iterdir()):
            raise CommandError(f"{out} is not empty; choose a new folder so no files are mixed")
        try:
            data = known_mapping.make_known_mapping(
                size=options["size"], n_a=options["n_a"], n_b=options["n_b"], n_test=options["n_test"],
                seed=options["seed"], image_filter=load_filter(options["filter"]), max_scale=options["max_scale"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        data.write(out)
        self.stdout.write(
            f"wrote {len(data.a)} A, {len(data.b)} B and {len(data.test_a)} test pairs of {data.size}x{data.size} "
            f"from {len(data.photos)} photographs to {out}"
        )
        self.stdout.write("evaluate a run trained on it with: manage.py evaluate RUN --known-mapping "
                          f"{out / 'manifest.json'}  (or the API's known_mapping: {json.dumps(data.params())})")
