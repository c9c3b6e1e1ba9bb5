"""record.Record: the frozen-dataclass behaviour the policy model relies on."""
import pytest

from nvhooks.policy.record import Factory, Record, replace


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


class Parsed(Record):
    name: str
    element: object = None
    _unequal = ("element",)


class Tally(Record, mutable=True):
    count: int
    notes: list = Factory(list)


def test_unequal_fields_stay_out_of_equality_hash_and_repr():
    one, two = Parsed("g", object()), Parsed("g", object())
    assert one == two and hash(one) == hash(two) and repr(one) == "Parsed(name='g')"
    assert one.element is not two.element


def test_mutable_record_assigns_and_is_unhashable_like_a_dataclass():
    tally = Tally(1)
    tally.notes = ["x"]
    tally.count += 1
    assert tally == Tally(2, ["x"])
    with pytest.raises(TypeError):
        hash(tally)
    with pytest.raises(AttributeError):
        del tally.count


def test_replace_and_as_fields():
    point = Point3(1, 2, {}, 3)
    assert replace(point, y=5, z=0) == Point3(1, 5, {}, 0) and point.y == 2
    assert point.as_fields() == {"x": 1, "y": 2, "tags": {}, "z": 3}
    with pytest.raises(TypeError, match="no field w"):
        replace(point, w=1)


def test_the_core_imports_no_dataclasses():
    # dataclasses (through inspect) cost 2 MiB of the agent and milliseconds of each shaping hook
    import subprocess
    import sys
    code = ("import sys; from nvhooks.policy import domxml, resolve; "
            "from nvhooks.shaping import apply, caps, diff, plan, gc, hook; from nvhooks.vlan import hook as v; "
            "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "[]"
