import pytest

from anirec.model import make_schedule


def test_schedules_follow_their_formulas():
    assert make_schedule("constant", 0.1)(7) == 0.1
    assert make_schedule("inverse_time", 0.1, decay_rate=0.5)(4) == pytest.approx(0.1 / 3)
    assert make_schedule("exponential", 0.1, gamma=0.5)(3) == pytest.approx(0.0125)
    assert make_schedule("step", 0.1, drop=0.5, every=2)(5) == pytest.approx(0.025)


def test_schedules_round_trip_through_dicts():
    schedule = make_schedule("step", 0.2, drop=0.3, every=4)
    assert make_schedule(schedule.to_dict()) == schedule


@pytest.mark.parametrize("name, options", [("constant", {"lr": 0}), ("exponential", {"gamma": 2}),
                                           ("step", {"every": 0}), ("inverse_time", {"bad": 1})])
def test_bad_schedules_raise(name, options):
    lr = options.pop("lr", 0.1)
    with pytest.raises(ValueError):
        make_schedule(name, lr, **options)
