"""Stream counts by mode and by measured goodput; congestion control by config and mode."""

import pytest

from novacron.transport.policy import StreamController, choose_congestion


@pytest.mark.parametrize(
    "mode,expected", [("datacenter", (32, 256)), ("internet", (4, 16)), ("hybrid", (8, 64))]
)
def test_mode_ranges_are_clamped_to_the_config(mode, expected):
    assert StreamController(4, 256).bounds(mode) == expected


def test_config_bounds_win_when_ranges_do_not_overlap():
    assert StreamController(1, 8).bounds("datacenter") == (8, 8)


def test_unknown_mode_is_rejected_by_name():
    with pytest.raises(ValueError, match="satellite"):
        StreamController().bounds("satellite")


def climb(goodput_of, mode="internet", rounds=12, controller=None):
    c = controller or StreamController(1, 512)
    n = c.streams_for("p", mode)
    seen = [n]
    for _ in range(rounds):
        n = c.observe("p", n, goodput_of(n))
        seen.append(n)
    return seen


def test_grows_while_goodput_rises_and_settles_at_the_best():
    # goodput rises up to 8 streams then falls (e.g. CPU or fairness limits)
    def goodput(n):
        return {1: 1, 2: 2, 4: 4, 8: 6, 16: 5}.get(n, 0.1)

    seen = climb(goodput, mode="internet")
    assert seen[:3] == [4, 8, 16]
    assert seen[-1] == 8 and seen[-3:] == [8, 8, 8]


def test_stays_at_the_lower_bound_when_more_streams_do_not_help():
    seen = climb(lambda n: 10.0, mode="internet")
    assert seen[-1] == 4


def test_climbs_to_the_upper_bound_when_every_step_pays():
    seen = climb(lambda n: float(n), mode="internet")
    assert seen[-1] == 16


def test_a_mode_change_restarts_from_the_new_range():
    c = StreamController(1, 512)
    climb(lambda n: float(n), mode="internet", controller=c)
    assert c.streams_for("p", "datacenter") == 32


def settled_at_8(**kwargs):
    """A controller that climbed 4 -> 8 -> 16 -> 4 and holds 8 (its best)."""
    c = StreamController(1, 512, **kwargs)
    seen = climb(lambda n: {4: 4.0, 8: 6.0, 16: 5.0}[n], rounds=4, controller=c)
    assert seen == [4, 8, 16, 4, 8]
    return c


def test_a_held_count_is_probed_now_and_then_and_kept_when_the_probe_does_not_pay():
    c = settled_at_8(reprobe_every=5)
    seen = climb(lambda n: {4: 4.0, 8: 6.0, 16: 5.0}[n], rounds=12, controller=c)
    # five samples at 8, one at 16 (up first), back; five more, one at 4 (then down), back
    assert seen == [8] * 5 + [16] + [8] * 5 + [4] + [8]


def test_a_probe_that_pays_moves_the_held_count():
    c = StreamController(1, 512, reprobe_every=5)
    assert climb(lambda n: 10.0, controller=c)[-1] == 4  # more streams did not help...
    seen = climb(lambda n: 2.5 * n, rounds=12, controller=c)  # ...until e.g. loss rose
    assert seen[-1] == 16 and 8 in seen


def test_a_changed_path_restarts_the_climb_without_waiting_for_a_probe():
    c = settled_at_8(reprobe_every=0)
    seen = climb(lambda n: {4: 2.0, 8: 3.0, 16: 4.5}[n], rounds=6, controller=c)
    assert seen[:4] == [8, 8, 8, 16]  # three samples half as fast as usual, then climb
    assert seen[-1] == 16


def test_noise_within_the_drift_does_not_restart_the_climb():
    c = settled_at_8(reprobe_every=0)
    samples = iter([4.8, 7.2] * 10)  # +-20% around the usual 6
    assert set(climb(lambda n: next(samples), rounds=20, controller=c)) == {8}


@pytest.mark.parametrize(
    "kwargs", [{"reprobe_every": -1}, {"drift": 0.0}, {"change_samples": 0}, {"smoothing": 1.5}]
)
def test_invalid_probing_settings_are_rejected_by_name(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        StreamController(**kwargs)


@pytest.mark.parametrize(
    "configured,mode,expected",
    [
        ("cubic", "internet", "cubic"),
        ("bbr", "datacenter", "bbr"),
        ("adaptive", "datacenter", "cubic"),
        ("adaptive", "internet", "bbr"),
        ("adaptive", "hybrid", "bbr"),
    ],
)
def test_congestion_choice(configured, mode, expected):
    assert choose_congestion(configured, mode) == expected


def test_unknown_congestion_choice_is_rejected():
    with pytest.raises(ValueError, match="vegas"):
        choose_congestion("vegas", "internet")
