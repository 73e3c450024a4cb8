"""The bookkeeping of steering sets loaded while an engine serves (steerkit.vllm.registry): which copy a
request is admitted under, and which copies a load may free. Pure Python, no vLLM."""
import pytest

from steerkit.vllm.registry import Catalog, Copy, Residency


def test_a_name_loaded_again_makes_a_new_copy_and_requests_keep_theirs():
    cat = Catalog({"mood": ("happy",)})
    assert cat.resolve("mood") == Copy("mood", "mood", ("happy",))  # a start set steers by its name
    new = cat.next_copy("mood", ("happy", "calm"))
    assert new.handle == "mood@1"
    assert cat.attributes() == {"mood": ("happy",)}  # nothing changes until the engine has it
    assert cat.loaded(new, freed=[]) == []
    assert cat.resolve("mood").handle == "mood@1" and cat.attributes() == {"mood": ("happy", "calm")}
    assert cat.eviction_order() == ["mood", "mood@1"]  # the replaced copy goes first
    assert cat.unloaded("mood") == new and cat.attributes() == {}
    with pytest.raises(KeyError):
        cat.resolve("mood")
    assert cat.next_copy("mood", ("x",)).handle == "mood@2"  # a name never reuses a copy's handle
    with pytest.raises(RuntimeError, match="out of order"):
        cat.loaded(Copy("mood@5", "mood", ("x",)), [])


def test_evictions_follow_last_use_and_a_freed_current_copy_takes_its_name_along():
    now = [0.0]
    cat = Catalog({"a": ("x",), "b": ("y",), "c": ("z",)}, clock=lambda: now[0])
    now[0] = 100.0
    cat.resolve("a")
    assert cat.eviction_order() == ["b", "c", "a"]
    assert cat.in_flight() == {"a"}  # stamped on a request just now: it may not have reached the engine yet
    now[0] = 200.0
    assert cat.in_flight() == set()
    d = cat.next_copy("d", ("w",))
    assert cat.loaded(d, freed=["b"]) == ["b"]
    assert sorted(cat.attributes()) == ["a", "c", "d"]
    assert cat.freed(["c", "nothing"]) == ["c"]


def test_residency_frees_unused_copies_in_order_and_never_one_in_use():
    res = Residency({"a": 2, "b": 2, "c": 4}, max_sets=4, columns=8)
    assert res.free_columns() == 0
    assert res.plan("d", 3, order=["a", "b", "c"], in_use={"a"}) == ["b", "c"]
    assert res.plan("d", 2, order=["a", "b", "c"], in_use=set()) == ["a"]
    with pytest.raises(ValueError, match="no room for a set of 3 attributes: 3 of 4 sets and 8 of 8 columns resident, "
                                         "and 2 of them in use by unfinished requests \\(a, c\\)"):
        res.plan("d", 3, order=["a", "b", "c"], in_use={"a", "c"})
    with pytest.raises(ValueError, match="already resident"):
        res.plan("a", 1, order=[], in_use=set())
    with pytest.raises(ValueError, match="holds 8 columns in all"):
        res.plan("e", 9, order=["a", "b", "c"], in_use=set())
    res.apply("d", 3, freed=["b", "c"])
    assert res.resident() == {"a": 2, "d": 3}
    # the set cap binds as well as the columns
    res = Residency({"a": 1, "b": 1}, max_sets=2, columns=64)
    assert res.plan("c", 1, order=["b", "a"], in_use=set()) == ["b"]
    assert res.release(["a", "b", "zz"], in_use={"a"}) == ["b"] and res.resident() == {"a": 1}
