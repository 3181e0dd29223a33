"""Evaluate a run here and now, with a progress bar: `manage.py evaluate RUN`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from training import evaluations
from training.models import Evaluation, Run
from winnow.exceptions import Conflict, InvalidInput


def known_mapping_params(value: str) -> dict[str, Any]:
    """A manifest.json written by make_benchmark_dataset, or the parameters as inline JSON."""
    path = Path(value)
    try:
        data = json.loads(path.read_text()) if path.is_file() else json.loads(value)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--known-mapping must be a manifest.json file or a JSON object: {exc}") from exc
    if not isinstance(data, dict):
        raise CommandError("--known-mapping must describe an object")
    return data.get("params", data)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


class Command(BaseCommand):
    help = "Evaluate a run's checkpoint (FID/KID, known-mapping PSNR/SSIM, classifier gain) and print the numbers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, help="the run's id")
        parser.add_argument("--checkpoint", type=int, help="checkpoint id (default: the newest)")
        parser.add_argument("--metrics", help="comma-separated: fid_kid, known_mapping, classifier (default: all that apply)")
        parser.add_argument("--known-mapping", help="manifest.json of make_benchmark_dataset, or its params as JSON")
        parser.add_argument("--seeds", help="classifier seeds, e.g. 0,1,2")
        parser.add_argument("--epochs", type=int, help="classifier epochs")
        parser.add_argument("--imbalance", type=float, help="keep one minority train image per this many majority ones")
        parser.add_argument("--max-images", type=int, help="images read per domain and partition (default 500)")
        parser.add_argument("--json", action="store_true", help="print the whole result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        run = Run.objects.select_related("split", "requested_by").filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"run {options['run']} does not exist")
        config: dict[str, Any] = {}
        if options["metrics"]:
            config["metrics"] = [m.strip() for m in options["metrics"].split(",") if m.strip()]
        if options["known_mapping"]:
            config["known_mapping"] = known_mapping_params(options["known_mapping"])
        classifier: dict[str, Any] = {}
        if options["seeds"]:
            try:
                classifier["seeds"] = [int(s) for s in options["seeds"].split(",")]
            except ValueError as exc:
                raise CommandError("--seeds must be whole numbers separated by commas") from exc
        for name in ("epochs", "imbalance"):
            if options[name] is not None:
                classifier[name] = options[name]
        if classifier:
            config["classifier"] = classifier
        if options["max_images"]:
            config["max_images"] = options["max_images"]
        try:
            evaluation = evaluations.start_evaluation(run=run, config=config, requested_by=run.requested_by,
                                                      checkpoint_id=options["checkpoint"], enqueue=False)
        except (InvalidInput, Conflict) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"evaluation {evaluation.pk} of run {run.pk} at step {evaluation.step}: "
                          f"{', '.join(evaluation.config['metrics'])}")
        with tqdm(total=100, unit="%", desc="evaluating", file=sys.stderr) as bar:
            def on_progress(stage: str, fraction: float) -> None:
                bar.set_postfix_str(stage)
                bar.update(round(fraction * 100) - bar.n)

            done = evaluations.execute_evaluation(evaluation_id=evaluation.pk, on_progress=on_progress)
        done = done or Evaluation.objects.get(pk=evaluation.pk)
        if options["json"]:
            self.stdout.write(json.dumps(done.results, indent=1))
            return
        self.print_results(done)

    def print_results(self, evaluation: Evaluation) -> None:
        results = evaluation.results
        for direction in ("AB", "BA"):
            scores = results.get("fid_kid", {}).get(direction)
            if scores:
                line = scores.get("skipped") or (f"FID {fmt(scores['fid'])}  KID {fmt(scores['kid'])} "
                                                 f"± {fmt(scores['kid_std'])}  ({scores['n_fake']} translated)")
                self.stdout.write(f"{direction}  {line}")
        known = results.get("known_mapping")
        if known:
            self.stdout.write(f"{'known mapping':<28}{'PSNR AB':>10}{'SSIM AB':>10}{'PSNR BA':>10}{'SSIM BA':>10}")
            rows = [("this run", known)] + [(name.replace("_", " "), scores)
                                            for name, scores in known.get("baselines", {}).items()]
            for name, scores in rows:
                self.stdout.write(f"{name:<28}" + "".join(
                    f"{fmt(scores[d][m]):>10}" for d in ("AB", "BA") for m in ("psnr", "ssim")))
        classifier = results.get("classifier")
        if classifier:
            if "skipped" in classifier:
                self.stdout.write(f"classifier  {classifier['skipped']}")
            else:
                for metric, parts in classifier["summary"].items():
                    gain = parts["gain"]
                    interval = f"[{fmt(gain['low'])}, {fmt(gain['high'])}]" if gain["low"] is not None else ""
                    self.stdout.write(
                        f"classifier {metric}: real {fmt(parts['baseline']['mean'])} -> with synthetic "
                        f"{fmt(parts['augmented']['mean'])}, gain {fmt(gain['mean'])} {interval} "
                        f"over seeds {classifier['seeds']}")
