"""The likely-error check (labeling/label_errors.py): run in the test's process on a small labeled pile whose
embeddings are separated clusters, with planted wrong answers."""

from __future__ import annotations

from typing import Any

import pytest

from labeling import label_errors, quality
from labeling.models import AnnotatorQuality, LabelCheck, LabelCheckStatus, LabelQuality, Task
from winnow.exceptions import InvalidInput

from .label_error_data import labeled_pile

pytestmark = pytest.mark.django_db


def run(project: Any, batch: Any = None, fails: bool = False) -> LabelCheck:
    check, created = label_errors.schedule_check(project=project, batch=batch)
    assert created
    if fails:  # the job records the refusal on its row, then re-raises it for the worker's log
        with pytest.raises(InvalidInput):
            label_errors.run_check(check_id=check.pk)
    else:
        label_errors.run_check(check_id=check.pk)
    check.refresh_from_db()
    return check


def test_it_scores_every_answered_task_and_ranks_the_planted_errors_lowest(project, make_batch, bob):
    pile = labeled_pile(project, make_batch, [bob], n=60, wrong={3, 22, 41})
    check = run(project)
    assert check.status == LabelCheckStatus.DONE, check.error
    assert (check.method, check.scored, check.labeled, check.trusted) == ("confident-learning", 60, 60, 0)
    lowest = list(LabelQuality.objects.filter(project=project).order_by("score").values_list("task_id", flat=True)[:3])
    assert set(lowest) == pile["wrong_ids"]
    flagged = set(LabelQuality.objects.filter(project=project, likely_error=True).values_list("task_id", flat=True))
    assert pile["wrong_ids"] <= flagged and len(flagged) <= 6
    suggested = dict(LabelQuality.objects.filter(task_id__in=pile["wrong_ids"]).values_list("task_id", "suggested_id"))
    assert all(suggested[t] == pile["choices"][pile["truth"][t]].pk for t in pile["wrong_ids"])
    assert check.figures[str(pile["batch"].pk)]["scored"] == 60
    assert 1 <= check.estimated_errors <= 8
    assert "confident joint" in check.estimate_method
    assert AnnotatorQuality.objects.get(check_run=check, annotator=bob).labeled == 60


def test_reviewed_answers_are_learned_from_but_never_scored(project, make_batch, bob):
    pile = labeled_pile(project, make_batch, [bob], n=60, wrong={3})
    corrected = pile["tasks"][3]
    quality.override_answer(task_id=corrected.pk, choice=pile["choices"][pile["truth"][corrected.pk]])
    check = run(project)
    assert (check.scored, check.trusted, check.heldout) == (59, 1, 1)
    assert check.heldout_correct == 1  # predicted by a model fitted without it
    assert not LabelQuality.objects.filter(task=corrected).exists()


def test_a_second_check_replaces_the_scores_of_its_scope(project, make_batch, bob):
    pile = labeled_pile(project, make_batch, [bob], n=30, wrong={4})
    first = run(project)
    second = run(project, batch=pile["batch"])
    assert LabelQuality.objects.filter(project=project).count() == 30
    assert set(LabelQuality.objects.values_list("check_run_id", flat=True)) == {second.pk}
    assert first.pk != second.pk and second.batch_id == pile["batch"].pk


def test_a_project_without_embeddings_fails_the_check_with_what_to_do(project, make_batch, bob):
    labeled_pile(project, make_batch, [bob], n=15, embed=False)
    check = run(project, fails=True)
    assert check.status == LabelCheckStatus.FAILED
    assert "no embeddings yet" in check.error and "Batches page" in check.error
    assert not LabelQuality.objects.exists()


def test_too_few_labels_of_a_choice_fails_the_check_naming_it(project, make_batch, bob):
    labeled_pile(project, make_batch, [bob], n=12)  # four images of each choice
    check = run(project, fails=True)
    assert check.status == LabelCheckStatus.FAILED
    assert "too few labels" in check.error and "has 4 labeled images" in check.error


def test_with_three_annotators_crowdlab_scores_the_answers_and_the_annotators(project, make_batch, bob, dave,
                                                                               make_user):
    from labeling import projects

    erin = make_user("erin")
    projects.add_member(project=project, username="erin", role="annotator")
    project.overlap = 3
    project.save(update_fields=["overlap"])
    pile = labeled_pile(project, make_batch, [bob, dave, erin], n=60, wrong={5, 30},
                        bad_annotator=erin, bad_rows=set(range(0, 60, 4)))
    check = run(project)
    assert check.status == LabelCheckStatus.DONE, check.error
    assert check.method == "crowdlab" and "CROWDLAB" in check.estimate_method
    lowest = set(LabelQuality.objects.order_by("score").values_list("task_id", flat=True)[:2])
    assert lowest == pile["wrong_ids"]
    scores = dict(AnnotatorQuality.objects.filter(check_run=check).values_list("annotator__username", "quality"))
    assert scores["erin"] < min(scores["bob"], scores["dave"])
    assert AnnotatorQuality.objects.get(check_run=check, annotator=erin).agreement < 0.9


def test_a_batch_becoming_labeled_queues_a_check_of_it(project, make_batch, bob, settings,
                                                       django_capture_on_commit_callbacks):
    settings.WINNOW_LABEL_ERRORS = True
    settings.WINNOW_LABEL_ERRORS_DEBOUNCE_SECONDS = 3600  # queued, not run, while the test looks
    with django_capture_on_commit_callbacks(execute=True):
        pile = labeled_pile(project, make_batch, [bob], n=10)
    check = LabelCheck.objects.get(project=project)
    assert (check.batch_id, check.status) == (pile["batch"].pk, LabelCheckStatus.QUEUED)
    # A second labeled event while it waits costs nothing more.
    label_errors.schedule_refresh(batch_id=pile["batch"].pk)
    assert LabelCheck.objects.filter(project=project).count() == 1


def test_without_embeddings_a_labeled_batch_queues_nothing(project, make_batch, bob, settings,
                                                           django_capture_on_commit_callbacks):
    settings.WINNOW_LABEL_ERRORS = True
    with django_capture_on_commit_callbacks(execute=True):
        labeled_pile(project, make_batch, [bob], n=10, embed=False)
    assert not LabelCheck.objects.exists()
    assert Task.objects.filter(project=project, status="completed").count() == 10


@pytest.mark.vector
def test_the_check_reads_pgvector_embeddings_as_it_reads_arrays(project, make_batch, bob):
    from labeling import vectors

    assert vectors.column_is_vector()
    pile = labeled_pile(project, make_batch, [bob], n=30, wrong={7})
    check = run(project)
    assert check.status == LabelCheckStatus.DONE and check.scored == 30
    assert LabelQuality.objects.order_by("score").first().task_id in pile["wrong_ids"]


def test_a_labeled_calibration_batch_queues_no_check(project, make_batch, bob, settings,
                                                     django_capture_on_commit_callbacks):
    from labeling import answers, leasing, vectors

    from .label_error_data import cluster_embeddings

    settings.WINNOW_LABEL_ERRORS = True
    batch = make_batch(project, 6, kind="calibration", seed=42)
    tasks = list(batch.tasks.order_by("id"))
    vectors.write(project_id=project.pk, version=1, asset_ids=[t.asset_id for t in tasks],
                  matrix=cluster_embeddings([i % 3 for i in range(6)]))
    choice = project.choices.first().pk
    with django_capture_on_commit_callbacks(execute=True):
        for task in leasing.lease_tasks(project=project, annotator=bob, count=6):
            answers.submit_annotation(task=task, annotator=bob, choice_id=choice, duration_ms=100)
    batch.refresh_from_db()
    assert batch.status == "labeled" and not LabelCheck.objects.exists()
