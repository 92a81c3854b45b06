from rmcourse.checking import check, expect


def test_check_reports_each_outcome(capsys):
    assert check("ok", lambda: None) is True

    def missing():
        raise NotImplementedError

    def wrong():
        expect(1 + 1 == 3, "1 + 1 should be 3 here")

    def crash():
        return {}["key"]

    assert check("todo", missing) is False
    assert check("bad", wrong) is False
    assert check("boom", crash) is False
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✅ ok"
    assert out[1].startswith("⏳ todo: not implemented yet")
    assert out[2] == "❌ bad: 1 + 1 should be 3 here"
    assert out[3].startswith("❌ boom: KeyError") and "line" in out[3]


def test_as_number_names_what_the_learner_returned():
    import pytest
    import torch

    from rmcourse.checking import as_number

    assert as_number(torch.tensor(2.5), "f") == 2.5
    for bad, message in [(None, "forget `return`"), (torch.ones(3), "shape (3,)"),
                         ("x", "returned str"), (float("nan"), "finite")]:
        with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
            as_number(bad, "f")
