"""change.py: the one change result of the tc, VLAN and hook-script cores."""
import pytest

from nvhooks.change import Change, Failed, line_text, plain_text
from nvhooks.errors import NetvirtError, PolicyError


def test_changed_defaults_to_having_actions_and_can_be_given():
    assert Change({}, {}).changed is False
    assert Change({}, {"a": 1}, ["add a"]).changed is True
    assert Change(b"x", b"x", [], changed=True).changed is True      # e.g. only a file mode is wrong
    assert Change(1, 2, ["x"], changed=False).changed is False


def test_diff_has_both_texts_and_headers():
    change = Change({"v": 1}, {"v": 2}, ["set v 2"], header="dev (live)", after_header="dev (planned)",
                    text=lambda view: f"v={view['v']}\n")
    assert change.diff() == {"before": "v=1\n", "after": "v=2\n", "before_header": "dev (live)",
                             "after_header": "dev (planned)"}
    assert Change(None, b"new\n", header="f").diff() == {
        "before": "", "after": "new\n", "before_header": "f", "after_header": "f"}
    assert Change("a", "b").diff() == {"before": "a", "after": "b"}     # no header given: none in the diff


def test_sections_give_a_list_diff():
    change = Change({"x": 1}, {"x": 2}, ["write f"], sections=(
        Change(b"old", b"new", header="f"), Change([], ["/l"], header="links", text=line_text)))
    assert change.diff() == [{"before": "old", "after": "new", "before_header": "f", "after_header": "f"},
                             {"before": "", "after": "/l\n", "before_header": "links", "after_header": "links"}]


def test_merge_joins_views_actions_and_changed():
    first = Change({"a": 1}, {"a": 1}, [], header="br0")
    second = Change({"b": 1}, {"b": 2}, ["set b 2"], header="other")
    merged = first.merge(second)
    assert (merged.before, merged.after) == ({"a": 1, "b": 1}, {"a": 1, "b": 2})
    assert merged.actions == ["set b 2"] and merged.changed
    assert merged.before_header == "br0" and first.actions == [] and first.before == {"a": 1}
    assert not first.merge(Change({}, {})).changed


def test_result_is_changed_then_fields_then_diff_when_asked():
    change = Change("a", "b", ["x"], header="h")
    assert change.result(device="d") == {"changed": True, "device": "d"}
    out = change.result(diff=True, device="d")
    assert list(out) == ["changed", "device", "diff"] and out["diff"]["after"] == "b"
    assert Change().result(order=[]) == {"changed": False, "order": []}
    assert change.as_dict() == {"changed": True, "before": "a", "after": "b", "actions": ["x"]}


def test_plain_and_line_text():
    assert plain_text(None) == "" and plain_text(b"\xffa") == "\ufffda" and plain_text(3) == "3"
    assert line_text(["a", "b"]) == "a\nb\n" and line_text([]) == ""


def test_failed_keeps_the_text_and_carries_fields():
    err = Failed.wrap(PolicyError("must be positive", "inbound.average"), device="vnet3", netns=None)
    assert isinstance(err, NetvirtError) and str(err) == "inbound.average: must be positive"
    assert (err.message, err.where, err.fields) == ("must be positive", "inbound.average",
                                                    {"device": "vnet3", "netns": None})
    assert str(Failed.wrap(ValueError("unknown driver 'x'"))) == "unknown driver 'x'"
    assert Failed("cannot install", changed=True).fields == {"changed": True}
    with pytest.raises(NetvirtError, match="^src: cannot read"):
        raise Failed("cannot read /x", "src")
