import pytest

from engine.progress import CancelToken, Cancelled, check, report, sub_progress


def test_cancel_token_raises_only_after_cancel():
    token = CancelToken()
    check(token)
    check(None)
    token.cancel()
    assert token.cancelled
    with pytest.raises(Cancelled):
        check(token)


def test_sub_progress_maps_and_clamps():
    seen = []
    sub = sub_progress(lambda f, m: seen.append((round(f, 3), m)), 0.5, 0.7)
    report(sub, 0.5, "half")
    report(sub, 2.0, "over")
    report(None, 0.1, "ignored")
    assert seen == [(0.6, "half"), (0.7, "over")]
    assert sub_progress(None, 0, 1) is None
