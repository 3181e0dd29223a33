"""The batch lifecycle is one table; every move is checked against it."""

import pytest

from labeling.models import BATCH_TRANSITIONS, Batch, BatchStatus, batch_sources

pytestmark = pytest.mark.django_db


def test_every_status_has_its_moves_and_accepted_is_final():
    assert set(BATCH_TRANSITIONS) == set(BatchStatus.values)
    assert BATCH_TRANSITIONS[BatchStatus.ACCEPTED] == frozenset()
    assert batch_sources(BatchStatus.FINALIZED) == (BatchStatus.OPEN,)
    assert set(batch_sources(BatchStatus.LABELED)) == {BatchStatus.FINALIZED, BatchStatus.LABELING}


def test_asking_for_a_move_the_lifecycle_does_not_allow_fails_loudly():
    with pytest.raises(ValueError, match="cannot move from accepted to labeling"):
        batch_sources(BatchStatus.LABELING, among=(BatchStatus.ACCEPTED,))
    with pytest.raises(ValueError, match="cannot move from open to accepted"):
        Batch.objects.transition(BatchStatus.ACCEPTED, among=(BatchStatus.OPEN,))


def test_a_transition_moves_only_a_batch_in_an_allowed_status(project, make_batch):
    batch = make_batch(project, 2, kind="calibration", finalize=False)
    assert Batch.objects.filter(pk=batch.pk).transition(BatchStatus.ACCEPTED) == 0  # open cannot be accepted
    assert Batch.objects.filter(pk=batch.pk).transition(BatchStatus.FINALIZED) == 1
    assert Batch.objects.filter(pk=batch.pk).transition(BatchStatus.FINALIZED) == 0  # won once only
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINALIZED
