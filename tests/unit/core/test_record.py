"""record.Record: the frozen-dataclass behaviour the policy model relies on."""
import pytest

from nvhooks.policy.record import Factory, Record


class Point(Record):
    x: int
    y: int = 0
    tags: dict = Factory(dict)


class Point3(Point):
    z: int = 0


def test_fields_defaults_and_order():
    assert Point(1) == Point(x=1, y=0)
    assert Point(1, 2).y == 2 and Point3(1, 2, {}, 3).z == 3
    assert Point(1).tags == {} and Point(1).tags is not Point(1).tags     # a fresh default each
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags={})"


def test_immutable_and_hashable_by_value():
    p = Point3(1)
    with pytest.raises(AttributeError):
        p.x = 2
    with pytest.raises(AttributeError):
        del p.x
    assert hash(Point3(1, tags=())) == hash(Point3(1, tags=()))
    assert Point3(1) != Point(1)                                          # other type, never equal


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {}, "needs x"), ((1, 2, 3, 4), {}, "takes 3 values"), ((1,), {"x": 2}, "x twice"),
    ((1,), {"w": 2}, "no field w")])
def test_bad_construction_names_the_field(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)
